package tlsrec

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wskit/wskit/internal/bufpool"
)

// FuzzRecordInput feeds a record layer bytes from a peer that holds its
// keys: either the fuzzer's bytes as they are, or, so that the fuzzer
// reaches past the tag, the fuzzer's inner plaintexts sealed as records
// (and keys updated after each well-formed KeyUpdate, as a sender would).
// Whatever comes, the layer must not panic, must hold no more than one
// record's bytes, must give every buffer back on Release, and what it
// sends must be records that the peer opens: KeyUpdates, data, and at
// most one alert, last.
//
// params: bits 0-1 the suite, bit 2 our role, bit 3 sealed mode, bits
// 16-31 the size of the pieces the input is fed in (0: all at once).
func FuzzRecordInput(f *testing.F) {
	w, _ := pair(f, suites[0])
	valid := records(f, w, []byte("hello"))
	w.UpdateKeys(true)
	valid = append(valid, records(f, w, pattern(3000))...)
	valid, _ = w.AppendAlert(valid, AlertCloseNotify)
	f.Add(uint32(0), valid)
	f.Add(uint32(7<<16), valid)
	f.Add(uint32(1), []byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(uint32(0), []byte{23, 3, 3, 0x41, 0x01})
	// Sealed mode: a length byte, then that many bytes of inner plaintext.
	sealed := func(inners ...[]byte) []byte {
		var b []byte
		for _, in := range inners {
			b = append(b, byte(len(in)))
			b = append(b, in...)
		}
		return b
	}
	for _, role := range []uint32{0, 4} {
		f.Add(8|role, sealed(
			inner(typeApplicationData, []byte("data"), 3),
			inner(typeHandshake, []byte{hsKeyUpdate, 0, 0, 1, 1}, 0),
			inner(typeApplicationData, nil, 0),
			inner(typeHandshake, append([]byte{hsNewSessionTicket, 0, 0, 20}, make([]byte, 10)...), 0),
			inner(typeHandshake, make([]byte, 10), 0),
			inner(typeApplicationData, []byte("more"), 0),
			inner(typeAlert, []byte{1, 90}, 0),
			inner(typeAlert, []byte{1, 0}, 0),
		))
		f.Add(9|role|3<<16, sealed(
			inner(typeHandshake, []byte{hsKeyUpdate, 0}, 0),
			inner(typeHandshake, []byte{0, 1, 0}, 0),
			inner(typeAlert, []byte{2, 40}, 0),
		))
		f.Add(10|role, sealed(inner(typeChangeCipherSpec, []byte{1}, 0), make([]byte, 5)))
	}

	f.Fuzz(checkRecordInput)
}

func checkRecordInput(t *testing.T, params uint32, input []byte) {
	id := suites[int(params&3)%len(suites)]
	role := Role(params >> 2 & 1)
	piece := int(params >> 16)
	lent := bufpool.Lent()

	stream := input
	if params&8 != 0 {
		peer := newLayer(t, testConfig(id, 1-role))
		stream = nil
		// Sealing costs a key derivation per KeyUpdate: past a few hundred
		// records an input tells nothing new, and only slows the fuzzer.
		for rest, records := input, 0; len(rest) > 0 && records < 256; records++ {
			n := min(int(rest[0]), len(rest)-1)
			in := rest[1 : 1+n]
			rest = rest[1+n:]
			stream = appendInner(peer, stream, in)
			if len(in) == 6 && bytes.Equal(in[:4], []byte{hsKeyUpdate, 0, 0, 1}) && in[4] <= 1 && in[5] == typeHandshake {
				if err := peer.w.update(peer.suite); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	r := newLayer(t, testConfig(id, role))
	back := newLayer(t, testConfig(id, 1-role)) // reads what r sends
	var sent []byte
	var readErr error
	for rest := stream; len(rest) > 0 && readErr == nil; {
		k := len(rest)
		if piece > 0 {
			k = min(k, piece)
		}
		in := bytes.Clone(rest[:k])
		rest = rest[k:]
		for len(in) > 0 {
			ev, n, ok, err := r.Receive(in)
			if n < 0 || n > len(in) {
				t.Fatalf("consumed %d of %d bytes", n, len(in))
			}
			in = in[n:]
			if r.Buffered() > HeaderLen+MaxCiphertext || bufpool.Lent()-lent > 2 {
				t.Fatalf("holding %d bytes in %d buffers", r.Buffered(), bufpool.Lent()-lent)
			}
			if ok && (ev.Kind == EventData) != (len(ev.Data) > 0) || len(ev.Data) > MaxPlaintext {
				t.Fatalf("event %d with %d bytes", ev.Kind, len(ev.Data))
			}
			want := r.Replies()
			before := len(sent)
			sent = r.AppendReplies(sent)
			if len(sent)-before != want {
				t.Fatalf("Replies said %d bytes, AppendReplies appended %d", want, len(sent)-before)
			}
			if err != nil {
				var ae *AlertError
				if !errors.As(err, &ae) {
					t.Fatalf("error %v is not an alert", err)
				}
				readErr = err
				break
			}
			if !ok {
				break
			}
		}
	}
	if readErr == nil {
		var err error
		if sent, err = r.AppendRecords(sent, []byte("reply")); err != nil && err != ErrWriteClosed {
			t.Fatal(err)
		}
	}
	if n, rest := CountRecords(sent); rest != 0 || n*Overhead > len(sent) {
		t.Fatalf("output of %d bytes is not whole records", len(sent))
	}
	got := readAll(back, sent)
	if got.err != nil {
		var ae *AlertError
		if !errors.As(got.err, &ae) || !ae.Remote || readErr == nil || ae.Alert != alertOf(t, readErr).Alert {
			t.Fatalf("our output reads as %v after %v", got.err, readErr)
		}
	} else if readErr == nil && r.Err() == nil && string(got.data) != "reply" {
		t.Fatalf("our data reads as %q", got.data)
	}
	r.Release()
	back.Release()
	if bufpool.Lent() != lent {
		t.Fatalf("%d buffers not given back", bufpool.Lent()-lent)
	}
}
