package autobahn

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// idLess orders case IDs numerically, part by part.
func idLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

func TestCaseList(t *testing.T) {
	cs := Cases()
	if len(cs) != 301+90+126 {
		t.Errorf("%d cases, want 517", len(cs))
	}
	seen := map[string]bool{}
	sections := map[string]int{}
	subsections := map[string]int{}
	for i, c := range cs {
		if seen[c.ID] {
			t.Errorf("duplicate case %s", c.ID)
		}
		seen[c.ID] = true
		if i > 0 && !idLess(cs[i-1].ID, c.ID) {
			t.Errorf("case %s follows %s", c.ID, cs[i-1].ID)
		}
		if c.Description == "" || c.Expectation == "" || c.open == nil || c.limit <= 0 {
			t.Errorf("case %s is incomplete", c.ID)
		}
		parts := strings.Split(c.ID, ".")
		if deflate := parts[0] == "12" || parts[0] == "13"; deflate != (len(c.offers) > 0) {
			t.Errorf("case %s has %d permessage-deflate offers", c.ID, len(c.offers))
		}
		sections[parts[0]]++
		subsections[parts[0]+"."+parts[1]]++
	}
	// Counts of an Autobahn 0.8 report for cases 1 to 10, 12 and 13.
	want := map[string]int{"1": 16, "2": 11, "3": 7, "4": 10, "5": 20, "6": 145, "7": 37, "9": 54, "10": 1, "12": 90, "13": 126}
	for s, n := range want {
		if sections[s] != n {
			t.Errorf("section %s has %d cases, want %d", s, sections[s], n)
		}
	}
	wantSub := map[string]int{
		"6.5": 5, "6.6": 11, "6.7": 4, "6.8": 2, "6.9": 4, "6.10": 3, "6.11": 5, "6.12": 8, "6.13": 5, "6.14": 10,
		"6.15": 1, "6.16": 3, "6.17": 5, "6.18": 5, "6.19": 5, "6.20": 7, "6.21": 8, "6.22": 34, "6.23": 7,
		"7.1": 6, "7.3": 6, "7.5": 1, "7.7": 13, "7.9": 9, "7.13": 2,
		"9.1": 6, "9.2": 6, "9.3": 9, "9.4": 9, "9.5": 6, "9.6": 6, "9.7": 6, "9.8": 6,
		"12.1": 18, "12.2": 18, "12.3": 18, "12.4": 18, "12.5": 18,
		"13.1": 18, "13.2": 18, "13.3": 18, "13.4": 18, "13.5": 18, "13.6": 18, "13.7": 18,
	}
	for s, n := range wantSub {
		if subsections[s] != n {
			t.Errorf("subsection %s has %d cases, want %d", s, subsections[s], n)
		}
	}
}

// TestUTF8Table checks the hand-copied validity flags against unicode/utf8.
func TestUTF8Table(t *testing.T) {
	for i, g := range utf8Groups() {
		for j, s := range g.seqs {
			if s.valid != utf8.ValidString(s.p) {
				t.Errorf("6.%d.%d (%s): %x marked valid=%v", i+5, j+1, g.name, s.p, s.valid)
			}
		}
	}
}

func TestMaskBytes(t *testing.T) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	for n := range 40 {
		for pos := range 4 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(i * 7)
			}
			want := bytes.Clone(b)
			for i := range want {
				want[i] ^= key[(pos+i)%4]
			}
			if end := maskBytes(b, key, pos); end != pos+n || !bytes.Equal(b, want) {
				t.Fatalf("maskBytes(%d bytes, pos %d) = % x, %d; want % x", n, pos, b, end, want)
			}
		}
	}
}

type sentFrame struct {
	fin     bool
	rsv, op byte
	payload []byte
}

// sentFrames decodes what s queued for writing.
func sentFrames(t *testing.T, s *session) []sentFrame {
	t.Helper()
	var b []byte
	for _, c := range s.w.q {
		b = append(b, c.b...)
	}
	var fs []sentFrame
	for len(b) > 0 {
		if b[1]&0x80 == 0 {
			t.Fatal("unmasked frame")
		}
		n, hl := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, hl = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, hl = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		var key [4]byte
		copy(key[:], b[hl:hl+4])
		p := bytes.Clone(b[hl+4 : hl+4+n])
		maskBytes(p, key, 0)
		fs = append(fs, sentFrame{fin: b[0]&0x80 != 0, rsv: b[0] >> 4 & 7, op: b[0] & 15, payload: p})
		b = b[hl+4+n:]
	}
	return fs
}

func testSession() *session {
	w := &writer{done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	return &session{w: w, state: stateOpen, remoteCode: -1, txFrames: map[byte]int{}}
}

// TestSendMessage checks Autobahn's fragmentation, with its empty final
// frame when the payload is a multiple of the fragment size.
func TestSendMessage(t *testing.T) {
	tests := []struct {
		n, size int
		want    []int // payload sizes; the last frame alone has FIN
	}{
		{0, 0, []int{0}},
		{5, 0, []int{5}},
		{5, 5, []int{5}},
		{5, 2, []int{2, 2, 1}},
		{4, 2, []int{2, 2, 0}},
		{3, 1, []int{1, 1, 1, 0}},
		{65536, 1300, append(repeatInts(1300, 50), 536)},
	}
	for _, tc := range tests {
		s := testSession()
		p := strings.Repeat("x", tc.n)
		s.sendMessage(p, true, tc.size)
		fs := sentFrames(t, s)
		var got []int
		var joined []byte
		for i, f := range fs {
			got = append(got, len(f.payload))
			joined = append(joined, f.payload...)
			wantOp := byte(0)
			if i == 0 {
				wantOp = 2
			}
			if f.op != wantOp || f.fin != (i == len(fs)-1) || f.rsv != 0 {
				t.Errorf("n=%d size=%d: frame %d has op %d fin %v rsv %d", tc.n, tc.size, i, f.op, f.fin, f.rsv)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || string(joined) != p {
			t.Errorf("n=%d size=%d: frames %v, want %v", tc.n, tc.size, got, tc.want)
		}
	}
}

func repeatInts(v, n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = v
	}
	return r
}

func TestSendFrameOptions(t *testing.T) {
	s := testSession()
	s.sendFrame(1, "abc", noFin, rsv(5))
	s.sendFrame(2, "xyz", repeatTo(7))
	s.sendFrame(2, "xyz", repeatTo(0))
	s.sendFrame(9, strings.Repeat("p", 10), chop(3))
	s.sendCloseFrame(1000, []byte("bye"), false)
	fs := sentFrames(t, s)
	want := []sentFrame{
		{false, 5, 1, []byte("abc")},
		{true, 0, 2, []byte("xyzxyzx")},
		{true, 0, 2, []byte{}},
		{true, 0, 9, []byte("pppppppppp")},
		{true, 0, 8, []byte("\x03\xe8bye")},
	}
	if fmt.Sprint(fs) != fmt.Sprint(want) {
		t.Errorf("frames\n%v\nwant\n%v", fs, want)
	}
	if n := len(s.w.q); n != 1+1+1+6+1 {
		t.Errorf("%d writes queued, want 10 (the chopped frame of 16 bytes in 6)", n)
	}
	if s.state != stateClosing || !s.closedByMe {
		t.Errorf("after our close: state %d closedByMe %v", s.state, s.closedByMe)
	}
}

func TestFilter(t *testing.T) {
	f := Filter([]string{"1", "6.4.*", "7.1.1"}, []string{"1.2.*"})
	for id, want := range map[string]bool{
		"1.1.1": true, "1.2.1": false, "10.1.1": false, "6.4.2": true, "6.4": false,
		"6.3.1": false, "7.1.1": true, "7.1.2": false,
	} {
		if f(id) != want {
			t.Errorf("filter(%s) = %v, want %v", id, f(id), want)
		}
	}
	if all := Filter(nil, nil); !all("9.8.6") {
		t.Error("empty filter rejects a case")
	}
}

func TestSummaryLine(t *testing.T) {
	rs := []Result{{Behavior: OK}, {Behavior: OK}, {Behavior: Failed}, {Behavior: Informational}}
	if got, want := SummaryLine(Summarize(rs)), "OK 2, NON-STRICT 0, INFORMATIONAL 1, FAILED 1"; got != want {
		t.Errorf("SummaryLine = %q, want %q", got, want)
	}
}

func TestMainCLI(t *testing.T) {
	url := startEcho(t, noFault)
	var out, errb bytes.Buffer
	if code := runMain(context.Background(), []string{"-url", url, "-cases", "1.1.1,2.5"}, &out, &errb); code != 0 {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasSuffix(out.String(), "OK 2, NON-STRICT 0, INFORMATIONAL 0, FAILED 0\n") || !strings.Contains(out.String(), "\n2.5 ") {
		t.Errorf("output:\n%s", out.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"-url", "ws://127.0.0.1:1/", "-cases", "1.1.1"}, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "opening handshake was never completed") {
		t.Errorf("unreachable server: exit %d, output:\n%s", code, out.String())
	}
	if code := runMain(context.Background(), []string{"-bogus"}, &out, &errb); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
}

// TestMainExpect checks -expect: the run passes only with exactly the
// counts given, including a count of zero for verdicts left out, so that a
// server whose cases went from OK to NON-STRICT or UNIMPLEMENTED fails.
func TestMainExpect(t *testing.T) {
	url := startEcho(t, noFault)
	lax := startEcho(t, keepOpen) // 2.5 becomes NON-STRICT
	tests := []struct {
		url, cases, expect string
		code               int
	}{
		{url, "1.1.1,2.5", "OK=2", 0},
		{url, "1.1.1,2.5", "OK=2,NON-STRICT=0,FAILED=0", 0},
		{url, "1.1.1,2.5", "OK=1", 1},
		{url, "1.1.1,2.5", "OK=2,INFORMATIONAL=1", 1},
		{lax, "2.5", "OK=1", 1},
		{lax, "2.5", "NON-STRICT=1", 0},
		{url, "12.1.1", "OK=1", 1}, // no permessage-deflate: UNIMPLEMENTED
		{url, "12.1.1", "UNIMPLEMENTED=1", 0},
		{url, "1.1.1", "OK", 2},
		{url, "1.1.1", "GREAT=1", 2},
		{url, "1.1.1", "OK=1,OK=1", 2},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := runMain(context.Background(), []string{"-url", tc.url, "-cases", tc.cases, "-expect", tc.expect}, &out, &errb)
		if code != tc.code {
			t.Errorf("cases %s, -expect %s: exit %d, want %d\n%s%s", tc.cases, tc.expect, code, tc.code, out.String(), errb.String())
		}
		if code == 1 && !strings.Contains(errb.String(), "expected") {
			t.Errorf("cases %s, -expect %s: stderr %q does not say what was expected", tc.cases, tc.expect, errb.String())
		}
	}
}

func TestCheckResponse(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3
	const accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	tests := []struct {
		head string
		ok   bool
	}{
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept, true},
		{"HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\nsec-websocket-accept: " + accept, true},
		{"HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept, false},
		{"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept, false},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + accept, false},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x" + accept, false},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\nSec-WebSocket-Extensions: permessage-deflate", false},
	}
	for _, tc := range tests {
		if _, err := checkResponse([]byte(tc.head), key, nil); (err == nil) != tc.ok {
			t.Errorf("checkResponse(%q) = %v, want ok=%v", tc.head, err, tc.ok)
		}
	}
}
