package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/poller"
)

// The permessage-deflate tests (RFC 7692) share what is in this file: the
// messages every peer echoes (deflateMessages), a TCP proxy that counts the
// bytes on the wire so that a test can tell that messages really went
// compressed (countingProxy), the comparison of extension headers
// (sameExtensions), and wskit's client side (dialDeflate, wskitEcho).

// wireMessage is a message that a peer sends and expects back.
type wireMessage struct {
	Name           string
	Binary         bool
	Data           []byte
	Incompressible bool // random bytes: deflate cannot shrink them
}

// deflateMessages returns the messages of the permessage-deflate tests, in
// order: small and empty ones, text of JSON-like records of 64, 200 (twice
// in a row: with context takeover the second starts with a window full of
// the first) and 300 KiB, multi-byte UTF-8, binary
// patterns of 64 and 300 KiB, random bytes of 64 and 300 KiB, and a run of
// 20 small records. Every peer sends them one at a time, then all at once.
// The largest is 300 KiB, under maxMessageSize.
func deflateMessages() []wireMessage {
	rng := rand.New(rand.NewPCG(7692, 1))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	ms := []wireMessage{
		{Name: "text-empty"},
		{Name: "text-json-100B", Data: jsonText(100, 0)},
		{Name: "text-utf8", Data: []byte(echoTexts[2].text)},
		{Name: "text-json-64KiB", Data: jsonText(64<<10, 1)},
		{Name: "text-json-200KiB", Data: jsonText(200<<10, 2)},
		{Name: "text-json-200KiB-again", Data: jsonText(200<<10, 2)},
		{Name: "text-utf8-65538B", Data: []byte(strings.Repeat("€", 21846))},
		{Name: "binary-empty", Binary: true},
		{Name: "binary-1B", Binary: true, Data: pattern(1)},
		{Name: "binary-126B", Binary: true, Data: pattern(126)},
		{Name: "binary-pattern-64KiB", Binary: true, Data: pattern(64 << 10)},
		{Name: "binary-random-64KiB", Binary: true, Data: random(64 << 10), Incompressible: true},
		{Name: "binary-pattern-300KiB", Binary: true, Data: pattern(300 << 10)},
		{Name: "text-json-300KiB", Data: jsonText(300<<10, 3)},
		{Name: "binary-random-300KiB", Binary: true, Data: random(300 << 10), Incompressible: true},
		{Name: "binary-json-64KiB", Binary: true, Data: jsonText(64<<10, 4)},
	}
	for i := range 20 {
		ms = append(ms, wireMessage{Name: fmt.Sprintf("text-record-%d", i), Data: jsonText(60+i*7, 100+i)})
	}
	return ms
}

// jsonText returns n bytes of JSON-like ASCII text: an array of records
// that differ in their numbers and names, cut at n bytes. Different seeds
// give different texts.
func jsonText(n, seed int) []byte {
	b := make([]byte, 0, n+200)
	b = append(b, '[')
	for i := 0; len(b) < n; i++ {
		id := seed*100003 + i
		b = fmt.Appendf(b, `{"id":%d,"name":"user-%d","email":"user%d@example.com","active":%t,"score":%d.%02d,"tags":["t%d","t%d"],"note":"record %d of seed %d"},`,
			id, id%9973, id%7919, i%3 == 0, (id*7919)%1000, i%100, i%17, (i*5)%23, i, seed)
	}
	return b[:n]
}

// deflateTotals returns the payload bytes of ms and how many of them are
// incompressible.
func deflateTotals(ms []wireMessage) (total, incompressible int64) {
	for _, m := range ms {
		total += int64(len(m.Data))
		if m.Incompressible {
			incompressible += int64(len(m.Data))
		}
	}
	return total, incompressible
}

// wantCompressed checks that wire bytes carried rounds × ms in one direction
// compressed: random bytes count whole (plus 2%), the rest must have shrunk
// to half (a 9-bit window, 512 bytes, leaves JSON-like text at about 40%;
// 15 bits at 8%); 32 KiB are left for the handshake, frame headers and a
// page. Sent as they are, they would take more than total.
func wantCompressed(t *testing.T, direction string, wire int64, ms []wireMessage, rounds int) {
	t.Helper()
	total, incompressible := deflateTotals(ms)
	total, incompressible = total*int64(rounds), incompressible*int64(rounds)
	limit := incompressible + incompressible/50 + (total-incompressible)/2 + 32<<10
	t.Logf("%s: %d bytes on the wire for %d bytes of messages (%d of them random): %.1f%%",
		direction, wire, total, incompressible, 100*float64(wire)/float64(total))
	if wire > limit {
		t.Errorf("%s: %d bytes on the wire for %d bytes of messages (%d random), want at most %d: the messages did not go compressed",
			direction, wire, total, incompressible, limit)
	}
}

// wantUncompressed checks that wire bytes carried rounds × ms as they are:
// at least their total.
func wantUncompressed(t *testing.T, direction string, wire int64, ms []wireMessage, rounds int) {
	t.Helper()
	total, _ := deflateTotals(ms)
	total *= int64(rounds)
	t.Logf("%s: %d bytes on the wire for %d bytes of messages", direction, wire, total)
	if wire < total {
		t.Errorf("%s: %d bytes on the wire for %d bytes of messages: something compressed them without permessage-deflate",
			direction, wire, total)
	}
}

// writeMessagesFile writes ms as JSON for node/echo.mjs's --messages:
// [{"name", "binary", "base64"}], and returns its absolute path.
func writeMessagesFile(t *testing.T, ms []wireMessage) string {
	t.Helper()
	type entry struct {
		Name   string `json:"name"`
		Binary bool   `json:"binary"`
		Base64 string `json:"base64"`
	}
	es := make([]entry, len(ms))
	for i, m := range ms {
		es[i] = entry{m.Name, m.Binary, base64.StdEncoding.EncodeToString(m.Data)}
	}
	b, err := json.Marshal(es)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "messages.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameExtensions reports whether two Sec-WebSocket-Extensions values say the
// same: the same extensions in the same order, each with the same set of
// parameters (names without regard to case, values exactly), in any order.
// "" equals "".
func sameExtensions(a, b string) bool {
	pa, erra := codec.ParseExtensions(nil, []string{a})
	pb, errb := codec.ParseExtensions(nil, []string{b})
	if erra != nil || errb != nil {
		return a == b
	}
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		if !strings.EqualFold(pa[i].Name, pb[i].Name) {
			return false
		}
		ma, oka := paramSet(pa[i])
		mb, okb := paramSet(pb[i])
		if !oka || !okb || !maps.Equal(ma, mb) {
			return false
		}
	}
	return true
}

// paramSet returns o's parameters by lower-case name; false when one
// repeats.
func paramSet(o codec.ExtensionOffer) (map[string]string, bool) {
	m := make(map[string]string, len(o.Params))
	for _, p := range o.Params {
		k := strings.ToLower(p.Name)
		if _, dup := m[k]; dup {
			return nil, false
		}
		m[k] = p.Value
	}
	return m, true
}

// wantExtensions checks a peer's or a session's view of the negotiated
// extensions against want (see sameExtensions).
func wantExtensions(t *testing.T, whose, got, want string) {
	t.Helper()
	if !sameExtensions(got, want) {
		t.Errorf("%s: extensions %q, want %q", whose, got, want)
	}
}

// wantServerExtensions checks Session.Extensions() of the sessions that
// opened on srv since the first `before` ones: there must be at least one,
// each must be exactly want (the server formats its answer itself), and the
// header the peer got must be exactly what the last one reports.
func wantServerExtensions(t *testing.T, srv *echoServer, before int, want, header string) {
	t.Helper()
	// The handler records a session once it runs, which may be after the
	// peer saw the handshake end.
	waitUntil(func() bool { return len(srv.sessionExtensions()) > before })
	exts := srv.sessionExtensions()[before:]
	if len(exts) == 0 {
		t.Errorf("no session opened on the server within %v", stepTimeout)
	}
	for i, e := range exts {
		if e != want {
			t.Errorf("session %d: Session.Extensions() %q, want %q", before+i, e, want)
		}
	}
	if len(exts) > 0 && header != exts[len(exts)-1] {
		t.Errorf("the peer got Sec-WebSocket-Extensions %q, Session.Extensions() says %q", header, exts[len(exts)-1])
	}
}

// deflateCase is a case of a permessage-deflate test against the server
// under test: its name, and the server's configuration.
type deflateCase interface {
	caseName() string
	configure(o *wskit.Options) // installs the case's permessage-deflate
}

// withDeflate returns a configure func for newEchoServer that installs a
// copy of pmd.
func withDeflate(pmd codec.PerMessageDeflate) func(*wskit.Options) {
	return func(o *wskit.Options) { o.Extensions = []codec.Extension{&pmd} }
}

// deflateServerConfig is a permessage-deflate configuration of the server
// under test, with the answer it gives to the peer's offer.
type deflateServerConfig struct {
	name string
	pmd  codec.PerMessageDeflate
	want string // the server's Sec-WebSocket-Extensions answer
}

func (c deflateServerConfig) caseName() string           { return c.name }
func (c deflateServerConfig) configure(o *wskit.Options) { withDeflate(c.pmd)(o) }

// forEachDeflateVariant runs test once per server variant and case
// (TestX/poll/server-no-context-takeover), each against a server of its own
// with the case's permessage-deflate installed.
func forEachDeflateVariant[C deflateCase](t *testing.T, cases []C, test func(t *testing.T, srv *echoServer, c C)) {
	t.Helper()
	for _, v := range serverVariants {
		t.Run(v.name, func(t *testing.T) {
			if v.engine == wskit.EnginePoll && !poller.Supported {
				t.Skip("the poll engine is not supported on this platform")
			}
			for _, c := range cases {
				t.Run(c.caseName(), func(t *testing.T) {
					test(t, newEchoServer(t, v, c.configure), c)
				})
			}
		})
	}
}

// clientDeflateOffer is a permessage-deflate configuration of wskit's
// client, which makes its offer; fragment is its Options.FragmentSize.
type clientDeflateOffer struct {
	name     string
	pmd      codec.PerMessageDeflate
	fragment int
}

// clientDeflateOffers are the offers wskit's client makes to the peers'
// servers: its default, each parameter on its own, and all of them; and
// the default again with compressed messages sent in frames of 1000 bytes.
// The peers' tables of answers hold all but "fragmented", whose answer is
// the default's.
var clientDeflateOffers = []clientDeflateOffer{
	{"default", codec.PerMessageDeflate{}, 0},
	{"server-no-context-takeover", codec.PerMessageDeflate{ServerNoContextTakeover: true}, 0},
	{"client-no-context-takeover", codec.PerMessageDeflate{ClientNoContextTakeover: true}, 0},
	{"server-max-window-bits-10", codec.PerMessageDeflate{ServerMaxWindowBits: 10}, 0},
	{"client-max-window-bits-11", codec.PerMessageDeflate{ClientMaxWindowBits: 11}, 0},
	{"combined", codec.PerMessageDeflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true,
		ServerMaxWindowBits: 10, ClientMaxWindowBits: 11}, 0},
	{"fragmented", codec.PerMessageDeflate{}, 1000},
}

// answerTo returns the answer to offer in a table of a peer's answers.
func answerTo(answers map[string]string, offer clientDeflateOffer) string {
	if offer.name == "fragmented" {
		return answers["default"]
	}
	return answers[offer.name]
}

// dialDeflate dials url with wskit's client, offering offer's
// permessage-deflate. A cleanup closes the session if the test did not.
func dialDeflate(t *testing.T, url string, offer clientDeflateOffer) (*wskit.Session, error) {
	t.Helper()
	o := wskit.DefaultOptions()
	o.MaxMessageSize = 2 * maxMessageSize
	o.MaxFrameSize = 2 * maxMessageSize
	o.FragmentSize = offer.fragment
	pmd := offer.pmd
	o.Extensions = []codec.Extension{&pmd}
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	s, err := wskit.Dial(ctx, url, &wskit.DialOptions{Options: o})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Close(wskit.CloseNormal, "") })
	return s, nil
}

// wskitEcho sends ms on s and reads each echo: one at a time, then all at
// once (a goroutine sends while this one reads).
func wskitEcho(t *testing.T, s *wskit.Session, ms []wireMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*stepTimeout)
	defer cancel()
	typ := func(m wireMessage) wskit.MessageType {
		if m.Binary {
			return wskit.Binary
		}
		return wskit.Text
	}
	check := func(phase string, m wireMessage) bool {
		got, err := s.Receive(ctx)
		if err != nil {
			t.Errorf("%s %s: read the echo: %v", phase, m.Name, err)
			return false
		}
		if got.Type != typ(m) || !bytes.Equal(got.Payload, m.Data) {
			t.Errorf("%s %s: echo is %v %s, want %v %s", phase, m.Name, got.Type, describe(got.Payload), typ(m), describe(m.Data))
		}
		return true
	}
	for _, m := range ms {
		if err := s.Send(typ(m), m.Data); err != nil {
			t.Fatalf("one-by-one %s: send: %v", m.Name, err)
		}
		if !check("one-by-one", m) {
			t.FailNow()
		}
	}
	sent := make(chan error, 1)
	go func() {
		for _, m := range ms {
			if err := s.Send(typ(m), m.Data); err != nil {
				sent <- fmt.Errorf("send %s: %w", m.Name, err)
				return
			}
		}
		sent <- nil
	}()
	for _, m := range ms {
		if !check("all-at-once", m) {
			break
		}
	}
	if err := <-sent; err != nil {
		t.Errorf("all-at-once: %v", err)
	}
}

// wskitClose closes s with 1000 and checks that the server answered it.
func wskitClose(t *testing.T, s *wskit.Session) {
	t.Helper()
	if err := s.Close(wskit.CloseNormal, "wskit done"); err != nil {
		t.Errorf("Close: %v", err)
	}
	r, ok := s.CloseReason()
	if !ok || r.Code != frame.CloseNormal {
		t.Errorf("close reason %+v (ended %v), want code %d; Err %v", r, ok, frame.CloseNormal, s.Err())
	}
}

// countingProxy is a TCP proxy on a loopback port that counts the bytes
// that pass each way. Peers connect to it instead of the server, so a test
// can tell how many bytes the messages took on the wire.
type countingProxy struct {
	URL  string // http://127.0.0.1:PORT
	Addr string

	up, down atomic.Int64 // client → server, server → client

	tap io.Writer // if not nil, also gets every byte sent to the client

	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startProxy starts a countingProxy to target (host:port). A cleanup stops
// it and closes the connections it still holds.
func startProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	return startTapProxy(t, target, nil)
}

// startTapProxy is startProxy with a tap for the bytes sent to clients.
func startTapProxy(t *testing.T, target string, tap io.Writer) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{Addr: ln.Addr().String(), ln: ln, conns: make(map[net.Conn]struct{}), tap: tap}
	p.URL = "http://" + p.Addr
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c, target)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// counts returns the bytes that passed so far, up (to the server) and down.
func (p *countingProxy) counts() (up, down int64) { return p.up.Load(), p.down.Load() }

func (p *countingProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

// serve forwards c to target both ways. When one side ends its sending, the
// other side's sending is shut down too, so that each end sees the other's
// TCP close as it would without the proxy.
func (p *countingProxy) serve(c net.Conn, target string) {
	defer c.Close()
	s, err := net.DialTimeout("tcp", target, stepTimeout)
	if err != nil {
		return
	}
	defer s.Close()
	p.track(c, true)
	p.track(s, true)
	defer p.track(c, false)
	defer p.track(s, false)
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn, n *atomic.Int64, tap io.Writer) {
		defer wg.Done()
		var r io.Reader = src
		if tap != nil {
			r = io.TeeReader(src, tap)
		}
		_, err := io.Copy(countingWriter{dst, n}, r)
		if tc, ok := dst.(*net.TCPConn); ok && err == nil {
			tc.CloseWrite()
		} else {
			// A reset or an error: end both.
			dst.Close()
			src.Close()
		}
	}
	wg.Add(2)
	go pipe(s, c, &p.up, nil)
	go pipe(c, s, &p.down, p.tap)
	wg.Wait()
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.n.Add(int64(n))
	return n, err
}

// waitUntil polls cond every 10 ms until it holds, for at most stepTimeout,
// and reports whether it held.
func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(stepTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// fanoutSet is the texts fanoutText(i, size) for i in [0, n), by content,
// for a check that a set of messages holds each exactly once.
type fanoutSet struct {
	want map[string]int // text → i
	seen map[int]bool
}

func newFanoutSet(n, size int) *fanoutSet {
	f := &fanoutSet{want: make(map[string]int, n), seen: make(map[int]bool, n)}
	for i := range n {
		f.want[fanoutText(i, size)] = i
	}
	return f
}

// take records a received text; it returns a problem, or "".
func (f *fanoutSet) take(text []byte) string {
	i, ok := f.want[string(text)]
	switch {
	case !ok:
		return fmt.Sprintf("a text that was not sent: %s", describe(text))
	case f.seen[i]:
		return fmt.Sprintf("text %d twice", i)
	}
	f.seen[i] = true
	return ""
}

// echoMessages sends ms through a peer's client and checks each echo: one
// at a time, then all at once (a goroutine writes while this one reads).
// read returns the echo's type (binary or text) and bytes; abort closes the
// client, so that a writer stuck behind a failed reader ends.
func echoMessages(t *testing.T, ms []wireMessage, write func(wireMessage) error, read func() (binary bool, p []byte, err error), abort func()) {
	t.Helper()
	check := func(phase string, m wireMessage) bool {
		binary, got, err := read()
		if err != nil {
			t.Errorf("%s %s: read the echo: %v", phase, m.Name, err)
			return false
		}
		if binary != m.Binary || !bytes.Equal(got, m.Data) {
			t.Errorf("%s %s: echo is binary=%v %s, want binary=%v %s", phase, m.Name, binary, describe(got), m.Binary, describe(m.Data))
		}
		return true
	}
	for _, m := range ms {
		if err := write(m); err != nil {
			t.Fatalf("one-by-one %s: write: %v", m.Name, err)
		}
		if !check("one-by-one", m) {
			t.FailNow()
		}
	}
	written := make(chan error, 1)
	go func() {
		for _, m := range ms {
			if err := write(m); err != nil {
				written <- fmt.Errorf("write %s: %w", m.Name, err)
				return
			}
		}
		written <- nil
	}()
	for _, m := range ms {
		if !check("all-at-once", m) {
			abort()
			break
		}
	}
	if err := <-written; err != nil {
		t.Errorf("all-at-once: %v", err)
	}
}
