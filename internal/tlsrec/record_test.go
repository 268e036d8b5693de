package tlsrec

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"strconv"
	"testing"

	"github.com/wskit/wskit/internal/bufpool"
)

// Data of many sizes goes both ways between the two ends, in one piece and
// cut at several sizes, and comes out as it went in, with records never
// larger than the protocol allows.
func TestRoundTrip(t *testing.T) {
	sizes := []int{1, 2, 17, 100, 1000, MaxPlaintext - 1, MaxPlaintext, MaxPlaintext + 1, 3*MaxPlaintext + 5, 1 << 20}
	cuts := [][]int{nil, {1}, {3, 1000}, {MaxPlaintext + HeaderLen + 1}, {4096}}
	for _, id := range suites {
		t.Run(suiteName(id), func(t *testing.T) {
			for _, role := range []Role{Server, Client} {
				w, r := pair(t, id)
				if role == Client {
					w, r = r, w
				}
				for _, n := range sizes {
					for _, cut := range cuts {
						if n > 100000 && len(cut) > 0 && cut[0] < 100 {
							continue
						}
						data := pattern(n)
						want := w.SealedSize(n)
						stream := records(t, w, data)
						if len(stream) != want {
							t.Fatalf("%d bytes sealed into %d, not %d", n, len(stream), want)
						}
						for rec := stream; len(rec) > 0; {
							size := HeaderLen + (int(rec[3])<<8 | int(rec[4]))
							if size-HeaderLen > MaxPlaintext+1+tagLen {
								t.Fatalf("record of %d bytes", size)
							}
							rec = rec[size:]
						}
						got := readAll(r, stream, cut...)
						if got.err != nil || !bytes.Equal(got.data, data) || r.Buffered() != 0 {
							t.Fatalf("%s writes %d bytes, cut %v: got %d bytes, err %v, %d buffered", role, n, cut, len(got.data), got.err, r.Buffered())
						}
					}
				}
			}
		})
	}
}

// A short stream with every kind of record the peer may send after the
// handshake, cut in two at every byte and fed a byte at a time, reads the
// same as whole.
func TestSplitAtEveryByte(t *testing.T) {
	for _, id := range suites {
		t.Run(suiteName(id), func(t *testing.T) {
			cfgW := testConfig(id, Server)
			cfgW.WriteSeq = 1 // the server sent a ticket already
			cfgR := testConfig(id, Client)
			cfgR.ReadSeq = 1
			w := newLayer(t, cfgW)
			var stream []byte
			stream = appendInner(w, stream, inner(typeApplicationData, []byte("hello, "), 0))
			stream = appendInner(w, stream, inner(typeApplicationData, nil, 3)) // empty, padded
			w.UpdateKeys(true)
			stream = append(stream, records(t, w, []byte("world"))...)
			stream = appendInner(w, stream, inner(typeApplicationData, []byte("!"), 40))
			stream, _ = w.AppendAlert(stream, AlertCloseNotify)
			stream = append(stream, "ignored after close_notify"...)

			check := func(what string, got result) {
				t.Helper()
				if got.err != nil || string(got.data) != "hello, world!" || !got.closed {
					t.Fatalf("%s: %q closed %v err %v", what, got.data, got.closed, got.err)
				}
				// The reader owes a KeyUpdate for the one that asked.
				if len(got.replies) != KeyUpdateLen {
					t.Fatalf("%s: replies of %d bytes", what, len(got.replies))
				}
			}
			check("whole", readAll(newLayer(t, cfgR), stream))
			check("bytewise", readAll(newLayer(t, cfgR), stream, 1))
			for i := 1; i < len(stream); i++ {
				check("cut at "+strconv.Itoa(i), readAll(newLayer(t, cfgR), stream, i, len(stream)))
			}
		})
	}
}

// Padding of any length is stripped, up to the size limit on the inner
// plaintext, which is content, type and padding together.
func TestPadding(t *testing.T) {
	for _, id := range suites {
		for _, c := range []struct{ content, pad int }{{0, 1}, {5, 0}, {5, 1}, {5, 300}, {0, MaxPlaintext}, {MaxPlaintext, 0}, {100, MaxPlaintext - 100}} {
			w, r := pair(t, id)
			stream := appendInner(w, nil, inner(typeApplicationData, pattern(c.content), c.pad))
			got := readAll(r, stream)
			if got.err != nil || !bytes.Equal(got.data, pattern(c.content)) {
				t.Fatalf("%s %+v: %d bytes, %v", suiteName(id), c, len(got.data), got.err)
			}
		}
		w, r := pair(t, id)
		stream := appendInner(w, nil, inner(typeApplicationData, pattern(100), MaxPlaintext-99))
		got := readAll(r, stream)
		if alertOf(t, got.err).Alert != AlertRecordOverflow {
			t.Fatalf("overlong inner plaintext: %v", got.err)
		}
	}
}

// checkFatal checks what a fault leaves: the error again on more input,
// no more output, and one alert record that the writer, reading it, takes
// for the given alert.
func checkFatal(t *testing.T, w, r *RecordLayer, got result, want Alert) {
	t.Helper()
	ae := alertOf(t, got.err)
	if ae.Alert != want || ae.Remote {
		t.Fatalf("error %v, want local %s", got.err, want)
	}
	if _, _, _, err := r.Receive([]byte{23, 3, 3, 0, 20}); err != got.err {
		t.Fatalf("after the fault, Receive returns %v", err)
	}
	if _, err := r.AppendRecords(nil, []byte("x")); err != got.err {
		t.Fatalf("after the fault, AppendRecords returns %v", err)
	}
	if r.Replies() != 0 || len(r.AppendReplies(nil)) != 0 {
		t.Fatal("replies after the alert was drained")
	}
	if n, rest := CountRecords(got.replies); n != 1 || rest != 0 || len(got.replies) != alertLen {
		t.Fatalf("replies %x are not one alert record", got.replies)
	}
	back := readAll(w, got.replies)
	if ae := alertOf(t, back.err); ae.Alert != want || !ae.Remote {
		t.Fatalf("the writer reads %v from the alert", back.err)
	}
	if r.Buffered() != 0 {
		t.Fatal("a failed layer holds bytes")
	}
}

// Each kind of bad input fails the connection with its alert.
func TestBadInput(t *testing.T) {
	type tc struct {
		name  string
		role  Role // of the reader
		build func(w *RecordLayer) []byte
		want  Alert
	}
	nst := func(size int) []byte { // a NewSessionTicket header and body
		return append([]byte{hsNewSessionTicket, byte(size >> 16), byte(size >> 8), byte(size)}, make([]byte, size)...)
	}
	cases := []tc{
		{"corrupt tag", Server, func(w *RecordLayer) []byte {
			s := records(t, w, []byte("hello"))
			s[len(s)-1] ^= 1
			return s
		}, AlertBadRecordMAC},
		{"corrupt header", Server, func(w *RecordLayer) []byte {
			s := records(t, w, []byte("hello"))
			s[4]-- // shorter record: the tag lands elsewhere
			return append(s, 0)
		}, AlertBadRecordMAC},
		{"record shorter than a tag", Server, func(w *RecordLayer) []byte {
			return []byte{23, 3, 3, 0, 15}
		}, AlertBadRecordMAC},
		{"oversize record", Server, func(w *RecordLayer) []byte {
			return []byte{23, 3, 3, (MaxCiphertext + 1) >> 8, (MaxCiphertext + 1) & 0xff}
		}, AlertRecordOverflow},
		{"wrong version", Server, func(w *RecordLayer) []byte {
			s := records(t, w, []byte("hello"))
			s[2] = 1
			return s
		}, AlertProtocolVersion},
		{"garbage", Server, func(w *RecordLayer) []byte { return []byte("GET / HTTP/1.1\r\n\r\n") }, AlertUnexpectedMessage},
		{"plaintext change_cipher_spec", Server, func(w *RecordLayer) []byte { return []byte{20, 3, 3, 0, 1, 1} }, AlertUnexpectedMessage},
		{"plaintext handshake", Client, func(w *RecordLayer) []byte { return append([]byte{22, 3, 3, 0, 9}, nst(5)...) }, AlertUnexpectedMessage},
		{"plaintext alert", Server, func(w *RecordLayer) []byte { return []byte{21, 3, 3, 0, 2, 1, 0} }, AlertUnexpectedMessage},
		{"protected change_cipher_spec", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeChangeCipherSpec, []byte{1}, 0))
		}, AlertUnexpectedMessage},
		{"unknown content type", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(99, []byte("x"), 0))
		}, AlertUnexpectedMessage},
		{"no content type", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, make([]byte, 10))
		}, AlertUnexpectedMessage},
		{"empty inner plaintext", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, nil)
		}, AlertUnexpectedMessage},
		{"empty handshake record", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeHandshake, nil, 2))
		}, AlertUnexpectedMessage},
		{"alert too long", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeAlert, []byte{1, 0, 0}, 0))
		}, AlertDecodeError},
		{"ticket to a server", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeHandshake, nst(20), 0))
		}, AlertUnexpectedMessage},
		{"ticket too short", Client, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeHandshake, nst(minTicket-1), 0))
		}, AlertDecodeError},
		{"ticket too long", Client, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeHandshake, nst(1 << 18)[:100], 0))
		}, AlertDecodeError},
		{"ticket cut by data", Client, func(w *RecordLayer) []byte {
			s := appendInner(w, nil, inner(typeHandshake, nst(100)[:50], 0))
			return appendInner(w, s, inner(typeApplicationData, []byte("x"), 0))
		}, AlertUnexpectedMessage},
		{"handshake header cut by an alert", Client, func(w *RecordLayer) []byte {
			s := appendInner(w, nil, inner(typeHandshake, []byte{hsKeyUpdate, 0}, 0))
			return appendInner(w, s, inner(typeAlert, []byte{1, 0}, 0))
		}, AlertUnexpectedMessage},
		{"other post-handshake message", Client, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeHandshake, []byte{13, 0, 0, 1, 0}, 0)) // CertificateRequest
		}, AlertUnexpectedMessage},
		{"KeyUpdate of 2 bytes", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeHandshake, []byte{hsKeyUpdate, 0, 0, 2, 0, 0}, 0))
		}, AlertDecodeError},
		{"KeyUpdate request 2", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeHandshake, []byte{hsKeyUpdate, 0, 0, 1, 2}, 0))
		}, AlertIllegalParameter},
		{"KeyUpdate not last in its record", Server, func(w *RecordLayer) []byte {
			return appendInner(w, nil, inner(typeHandshake, []byte{hsKeyUpdate, 0, 0, 1, 0, hsKeyUpdate, 0, 0, 1, 0}, 0))
		}, AlertUnexpectedMessage},
		{"data after KeyUpdate under the old key", Server, func(w *RecordLayer) []byte {
			s := appendInner(w, nil, inner(typeHandshake, []byte{hsKeyUpdate, 0, 0, 1, 0}, 0))
			return appendInner(w, s, inner(typeApplicationData, []byte("x"), 0))
		}, AlertBadRecordMAC},
		{"too many KeyUpdates without data", Server, func(w *RecordLayer) []byte {
			var s []byte
			for range maxUseless + 1 {
				w.UpdateKeys(false)
				s = w.AppendReplies(s)
			}
			return s
		}, AlertUnexpectedMessage},
		{"replayed record", Server, func(w *RecordLayer) []byte {
			s := records(t, w, []byte("once"))
			return append(s, s...)
		}, AlertBadRecordMAC},
	}
	for _, id := range suites {
		for _, c := range cases {
			t.Run(suiteName(id)+"/"+c.name, func(t *testing.T) {
				w := newLayer(t, testConfig(id, 1-c.role))
				stream := c.build(w)
				for _, cut := range []int{0, 1} {
					r := newLayer(t, testConfig(id, c.role))
					back := newLayer(t, testConfig(id, 1-c.role)) // the writer, for reading the alert
					got := readAll(r, stream, cut)
					checkFatal(t, back, r, got, c.want)
				}
			})
		}
	}
}

// The peer's alerts: close_notify ends its data and leaves ours going,
// user_canceled is dropped, any other alert ends the connection with its
// name and owes nothing.
func TestPeerAlerts(t *testing.T) {
	for _, id := range suites {
		w, r := pair(t, id)
		s := records(t, w, []byte("before"))
		s = appendInner(w, s, inner(typeAlert, []byte{1, byte(AlertUserCanceled)}, 0))
		s, _ = w.AppendAlert(s, AlertCloseNotify)
		if _, err := w.AppendRecords(nil, []byte("x")); err != ErrWriteClosed {
			t.Fatalf("writing after close_notify: %v", err)
		}
		s = append(s, "\x17\x03\x03\x00\x20 junk, not a record of w's"...) // ignored
		got := readAll(r, s)
		if got.err != nil || string(got.data) != "before" || !got.closed || len(got.replies) != 0 {
			t.Fatalf("%+v", got)
		}
		// Our side still writes, and the peer still reads.
		back := readAll(w, records(t, r, []byte("after")))
		if back.err != nil || string(back.data) != "after" {
			t.Fatalf("half-closed: %+v", back)
		}

		w, r = pair(t, id)
		s = records(t, w, []byte("data"))
		s = appendInner(w, s, inner(typeAlert, []byte{2, 40}, 0))
		s = append(s, records(t, w, []byte("never read"))...)
		got = readAll(r, s)
		ae := alertOf(t, got.err)
		if string(got.data) != "data" || !ae.Remote || ae.Alert != 40 || len(got.replies) != 0 {
			t.Fatalf("%+v", got)
		}
		if got.err.Error() != "tls: peer sent alert handshake_failure" {
			t.Fatalf("error reads %q", got.err)
		}
		var te tls.AlertError
		if !errors.As(got.err, &te) || te != 40 {
			t.Fatal("the error does not unwrap to tls.AlertError")
		}
		if _, err := r.AppendRecords(nil, []byte("x")); err != got.err {
			t.Fatalf("writing after the peer's alert: %v", err)
		}
	}
}

// user_canceled goes ahead of close_notify, which still follows.
func TestAppendUserCanceled(t *testing.T) {
	w, r := pair(t, tls.TLS_AES_128_GCM_SHA256)
	s, err := w.AppendAlert(nil, AlertUserCanceled)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = w.AppendAlert(s, AlertCloseNotify); err != nil {
		t.Fatal(err)
	}
	if got := readAll(r, s); got.err != nil || !got.closed {
		t.Fatalf("%+v", got)
	}
	if _, err := w.AppendRecords(nil, []byte("x")); err != ErrWriteClosed {
		t.Fatal(err)
	}
}

// Our fatal alert ends the connection both ways.
func TestAppendFatalAlert(t *testing.T) {
	w, r := pair(t, tls.TLS_AES_128_GCM_SHA256)
	s, err := w.AppendAlert(nil, AlertInternalError)
	if err != nil {
		t.Fatal(err)
	}
	if ae := alertOf(t, readAll(r, s).err); ae.Alert != AlertInternalError || !ae.Remote {
		t.Fatal(ae)
	}
	if _, _, _, err := w.Receive([]byte{23, 3, 3, 0, 20}); err == nil {
		t.Fatal("reading after our fatal alert")
	}
	if _, err := w.AppendAlert(nil, AlertCloseNotify); err == nil {
		t.Fatal("an alert after a fatal one")
	}
}

// A KeyUpdate that asks for ours is answered once, however many come
// while we are silent; one that does not ask is not; either changes only
// the records after it; and one cut across records counts.
func TestKeyUpdate(t *testing.T) {
	for _, id := range suites {
		w, r := pair(t, id)
		var s []byte
		for range 3 {
			w.UpdateKeys(true)
			s = w.AppendReplies(s)
		}
		s = append(s, records(t, w, []byte("after three"))...)
		got := readAll(r, s)
		if got.err != nil || string(got.data) != "after three" || len(got.replies) != KeyUpdateLen {
			t.Fatalf("%+v", got)
		}
		// w reads r's update and moves its read key; both go on.
		if back := readAll(w, append(got.replies, records(t, r, []byte("back"))...)); back.err != nil || string(back.data) != "back" || len(back.replies) != 0 {
			t.Fatalf("%+v", back)
		}

		w.UpdateKeys(false)
		got = readAll(r, records(t, w, []byte("x")))
		if got.err != nil || string(got.data) != "x" || len(got.replies) != 0 {
			t.Fatalf("unrequested: %+v", got)
		}

		// The KeyUpdate's header in one record, its byte in the next.
		s = appendInner(w, nil, inner(typeHandshake, []byte{hsKeyUpdate, 0}, 0))
		s = appendInner(w, s, inner(typeHandshake, []byte{0, 1, 1}, 5))
		if err := w.w.update(w.suite); err != nil {
			t.Fatal(err)
		}
		s = append(s, records(t, w, []byte("split"))...)
		got = readAll(r, s)
		if got.err != nil || string(got.data) != "split" || len(got.replies) != KeyUpdateLen {
			t.Fatalf("split KeyUpdate: %+v", got)
		}
	}
}

// Tickets reach a client whole or spread over records, between data, and
// are skipped.
func TestSessionTicketsIgnored(t *testing.T) {
	for _, id := range suites {
		w, r := pair(t, id) // w is the server
		ticket := append([]byte{hsNewSessionTicket, 0, 1, 0}, pattern(256)...)
		s := appendInner(w, nil, inner(typeHandshake, append(bytes.Clone(ticket), ticket...), 0))
		s = append(s, records(t, w, []byte("a"))...)
		for i := 0; i < len(ticket); i += 100 {
			s = appendInner(w, s, inner(typeHandshake, ticket[i:min(i+100, len(ticket))], 7))
		}
		s = append(s, records(t, w, []byte("b"))...)
		if got := readAll(r, s, 13); got.err != nil || string(got.data) != "ab" {
			t.Fatalf("%+v", got)
		}
	}
}

// Sequence numbers: our key is updated before it seals more records than
// the suite allows, the peer is asked to update when its own is worn, and
// no sequence number wraps.
func TestSequenceLimits(t *testing.T) {
	for _, id := range suites {
		w, r := pair(t, id)
		w.limitLog, r.limitLog = 3, 3
		var s []byte
		for i := range 20 {
			s = append(s, records(t, w, []byte{byte(i)})...)
		}
		if n, _ := CountRecords(s); n != 20+2 { // KeyUpdates before records 9 and 17
			t.Fatalf("%d records", n)
		}
		got := readAll(r, s)
		if got.err != nil || len(got.data) != 20 {
			t.Fatalf("%+v", got)
		}
		// r read 8 records under each of w's first two keys: it asked for an update after each.
		if len(got.replies) != 2*KeyUpdateLen {
			t.Fatalf("replies of %d bytes", len(got.replies))
		}
		// w answers both requests with one update.
		back := readAll(w, got.replies)
		if back.err != nil || len(back.replies) != KeyUpdateLen {
			t.Fatalf("%+v", back)
		}
		if got := readAll(r, append(back.replies, records(t, w, []byte("x"))...)); got.err != nil || string(got.data) != "x" {
			t.Fatalf("%+v", got)
		}
	}

	// The last usable numbers: a ChaCha20 writer at 2^64-2 updates first;
	// a reader takes records up to 2^64-2 and fails on 2^64-1.
	cfgW := testConfig(tls.TLS_CHACHA20_POLY1305_SHA256, Server)
	cfgW.WriteSeq = math.MaxUint64 - 1
	cfgR := testConfig(tls.TLS_CHACHA20_POLY1305_SHA256, Client)
	cfgR.ReadSeq = math.MaxUint64 - 1
	w, r := newLayer(t, cfgW), newLayer(t, cfgR)
	s := records(t, w, []byte("last"))
	if len(s) != KeyUpdateLen+Overhead+4 || w.w.seq != 1 {
		t.Fatalf("%d bytes, next sequence number %d", len(s), w.w.seq)
	}
	if got := readAll(r, s); got.err != nil || string(got.data) != "last" {
		t.Fatalf("%+v", got)
	}
	w, r = newLayer(t, cfgW), newLayer(t, cfgR)
	s = appendInner(w, nil, inner(typeApplicationData, []byte("a"), 0))
	s = appendInner(w, s, inner(typeApplicationData, []byte("b"), 0)) // numbered 2^64-1
	got := readAll(r, s)
	if string(got.data) != "a" {
		t.Fatalf("%+v", got)
	}
	checkFatal(t, newLayer(t, cfgW), r, got, AlertInternalError)

	cfgW.Suite, cfgW.Secrets = tls.TLS_AES_128_GCM_SHA256, testSecrets(tls.TLS_AES_128_GCM_SHA256)
	cfgW.WriteSeq = 1<<24 - 1
	w = newLayer(t, cfgW)
	if s := records(t, w, make([]byte, 2*MaxPlaintext)); len(s) != KeyUpdateLen+2*(Overhead+MaxPlaintext) {
		t.Fatalf("AES-GCM at 2^24-1: %d bytes", len(s))
	}
	cfgW.WriteSeq = math.MaxUint64
	if _, err := New(cfgW); err == nil {
		t.Fatal("a layer with an exhausted sequence number")
	}
}

// SealedSize foretells what AppendRecords appends, KeyUpdates included.
func TestSealedSize(t *testing.T) {
	for _, id := range suites {
		for _, owe := range []bool{false, true} {
			for _, limitLog := range []uint8{1, 2, 64} {
				for _, n := range []int{0, 1, MaxPlaintext, MaxPlaintext + 1, 10*MaxPlaintext + 3} {
					w, _ := pair(t, id)
					w.limitLog = limitLog
					if owe {
						w.UpdateKeys(true)
					}
					want := w.SealedSize(n)
					if got := len(records(t, w, make([]byte, n))); got != want {
						t.Fatalf("%s owe %v limit 2^%d: SealedSize(%d) = %d, appended %d", suiteName(id), owe, limitLog, n, want, got)
					}
				}
			}
		}
	}
}

// SealInPlace seals exactly what AppendRecords would, with or without a
// KeyUpdate to go first.
func TestSealInPlace(t *testing.T) {
	for _, id := range suites {
		for _, n := range []int{0, 1, 1000, MaxPlaintext} {
			for _, owe := range []bool{false, true} {
				a, _ := pair(t, id)
				b, r := pair(t, id)
				if owe {
					a.UpdateKeys(false)
					b.UpdateKeys(false)
				}
				data := pattern(n)
				want, _ := a.AppendRecords([]byte("prefix"), data)
				if n == 0 {
					want = appendInner(a, want, inner(typeApplicationData, nil, 0))
				}
				buf := append([]byte("prefix"), make([]byte, HeaderLen)...)
				buf = append(buf, data...)
				got, err := b.SealInPlace(buf, len("prefix"))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s %d owe %v: %v\n got %x\nwant %x", suiteName(id), n, owe, err, got[:min(len(got), 64)], want[:min(len(want), 64)])
				}
				if res := readAll(r, got[len("prefix"):]); res.err != nil || !bytes.Equal(res.data, data) {
					t.Fatalf("%+v", res)
				}
			}
		}
		w, _ := pair(t, id)
		if _, err := w.SealInPlace(make([]byte, HeaderLen+MaxPlaintext+1), 0); err != ErrTooLong {
			t.Fatal(err)
		}
		if _, err := w.SealInPlace(make([]byte, 3), 0); err == nil {
			t.Fatal("no room for a header")
		}
	}
}

// A large record read through ReadRoom in pieces of several sizes comes
// out as sent, the room never offering more than the record needs.
func TestReadRoom(t *testing.T) {
	for _, piece := range []int{1, 100, 5000, MaxCiphertext} {
		w, r := pair(t, tls.TLS_AES_128_GCM_SHA256)
		data := pattern(3*MaxPlaintext + 10)
		stream := records(t, w, data)
		var out []byte
		for len(stream) > 0 {
			if room := r.ReadRoom(1); room != nil {
				k := copy(room[:min(len(room), piece)], stream)
				stream = stream[k:]
				ev, n, ok, err := r.Receive(room[:k])
				if err != nil || n != k {
					t.Fatal(n, err)
				}
				if ok {
					out = append(out, ev.Data...)
				}
				continue
			}
			k := min(len(stream), piece, HeaderLen+3) // a header and a little body, the usual way
			ev, n, ok, err := r.Receive(stream[:k])
			if err != nil {
				t.Fatal(err)
			}
			stream = stream[n:]
			if ok {
				out = append(out, ev.Data...)
			}
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("piece %d: %d bytes out", piece, len(out))
		}
		if r.ReadRoom(1) != nil || r.Buffered() != 0 {
			t.Fatal("room or bytes held between records")
		}
	}
}

// Data of a cut record can be kept past the next call with Detach.
func TestDetach(t *testing.T) {
	w, r := pair(t, tls.TLS_AES_128_GCM_SHA256)
	lent := bufpool.Lent()
	s := records(t, w, []byte("first"))
	s = append(s, records(t, w, []byte("second"))...)
	r.Receive(s[:10])
	ev, _, ok, err := r.Receive(s[10:])
	if !ok || err != nil || string(ev.Data) != "first" {
		t.Fatal(ok, err)
	}
	b := r.Detach()
	if b == nil {
		t.Fatal("nothing to detach from a cut record")
	}
	if _, n, ok, _ := r.Receive(s[27:40]); ok || n != 13 || r.Buffered() != 13 {
		t.Fatal("second record not cut")
	}
	if string(ev.Data) != "first" {
		t.Fatal("detached data overwritten")
	}
	ReturnBuffer(b)
	r.Release()
	if bufpool.Lent() != lent {
		t.Fatalf("%d buffers not given back", bufpool.Lent()-lent)
	}
	if _, _, _, err := r.Receive(s); err != ErrReleased {
		t.Fatal(err)
	}
	if _, err := r.AppendRecords(nil, s); err != ErrReleased {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	good := testConfig(tls.TLS_AES_256_GCM_SHA384, Server)
	for name, mod := range map[string]func(*Config){
		"unknown suite":    func(c *Config) { c.Suite = tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 },
		"short secret":     func(c *Config) { c.Secrets.Client = c.Secrets.Client[:32] },
		"missing secret":   func(c *Config) { c.Secrets.Server = nil },
		"unknown role":     func(c *Config) { c.Role = 2 },
		"read exhausted":   func(c *Config) { c.ReadSeq = math.MaxUint64 },
		"write exhausted":  func(c *Config) { c.WriteSeq = math.MaxUint64 },
		"suite mismatched": func(c *Config) { c.Suite = tls.TLS_AES_128_GCM_SHA256 },
	} {
		cfg := good
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
}

func TestAlertNames(t *testing.T) {
	for a, want := range map[Alert]string{AlertBadRecordMAC: "bad_record_mac", 116: "certificate_required", 200: "alert(200)"} {
		if a.String() != want {
			t.Errorf("%d: %q", a, a.String())
		}
	}
	e := &AlertError{Alert: AlertRecordOverflow, Reason: "too long"}
	if e.Error() != "tls: record_overflow: too long" {
		t.Error(e.Error())
	}
}

// End tells how the peer's stream ended: cleanly, inside a record, or at
// a record boundary without close_notify.
func TestEnd(t *testing.T) {
	lent := bufpool.Lent()
	w, r := pair(t, tls.TLS_AES_128_GCM_SHA256)
	s := records(t, w, []byte("data"))
	if readAll(r, s).err != nil || r.End() != io.EOF {
		t.Fatal("a boundary without close_notify is not io.EOF")
	}

	w, r = pair(t, tls.TLS_AES_128_GCM_SHA256)
	s = records(t, w, []byte("data"))
	for _, cut := range []int{3, HeaderLen, len(s) - 1} {
		_, r := pair(t, tls.TLS_AES_128_GCM_SHA256)
		r.Receive(bytes.Clone(s[:cut]))
		if err := r.End(); err != ErrTruncated || r.Buffered() != 0 {
			t.Fatalf("cut at %d: %v, %d bytes held", cut, err, r.Buffered())
		}
	}

	s, _ = w.AppendAlert(s, AlertCloseNotify)
	if readAll(r, s).err != nil || r.End() != nil {
		t.Fatal("a stream ended by close_notify")
	}

	w, r = pair(t, tls.TLS_AES_128_GCM_SHA256)
	got := readAll(r, []byte{20, 3, 3, 0, 1, 1})
	if r.End() != got.err {
		t.Fatal("End forgets the error")
	}
	if bufpool.Lent() != lent {
		t.Fatal("buffers not given back")
	}
}

// A layer that sheds its AEADs between records carries on as if it had
// not: each side makes them again from its secrets when next used, and
// holds about none of their memory while shed.
func TestShed(t *testing.T) {
	for _, id := range suites {
		t.Run(suiteName(id), func(t *testing.T) {
			w, r := pair(t, id)
			for i := range 5 {
				data := pattern(100 + i)
				stream := records(t, w, data)
				got := readAll(r, stream)
				if got.err != nil || !bytes.Equal(got.data, data) {
					t.Fatalf("record %d after shedding: %d bytes, %v", i, len(got.data), got.err)
				}
				w.Shed()
				r.Shed()
				if w.w.keys != nil || r.r.keys != nil {
					t.Fatal("Shed kept an AEAD")
				}
			}
			w.Release()
			w.Shed()
			if _, err := w.AppendRecords(nil, []byte("x")); err == nil {
				t.Fatal("a released layer sealed after Shed")
			}
		})
	}
}
