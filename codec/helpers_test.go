package codec

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wskit/wskit/frame"
)

// clientFrame encodes one frame as a client sends it (masked).
func clientFrame(op frame.Opcode, fin bool, payload []byte) []byte {
	e := Encoder{Role: Client}
	return e.AppendFrame(nil, frame.Header{Fin: fin, Op: op}, payload)
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

type decoded struct {
	h       frame.Header
	payload string
}

// decodeAll runs a fresh decoder over in, fed in pieces of the given sizes
// (cycled; 0 means all at once), and returns the frames and the first error.
func decodeAll(t *testing.T, d *Decoder, in []byte, sizes ...int) ([]decoded, error) {
	t.Helper()
	in = bytes.Clone(in)
	var out []decoded
	for i := 0; len(in) > 0; i++ {
		chunk := in
		if len(sizes) > 0 && sizes[i%len(sizes)] > 0 && sizes[i%len(sizes)] < len(in) {
			chunk = in[:sizes[i%len(sizes)]]
		}
		in = in[len(chunk):]
		for len(chunk) > 0 {
			f, n, ok, err := d.Next(chunk)
			if err != nil {
				return out, err
			}
			if n == 0 && !ok {
				t.Fatalf("decoder made no progress on %d bytes", len(chunk))
			}
			chunk = chunk[n:]
			if ok {
				out = append(out, decoded{f.Header, string(f.Payload)})
			}
		}
	}
	return out, nil
}

func wantCode(t *testing.T, err error, code frame.CloseCode) {
	t.Helper()
	var pe *frame.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *frame.ProtocolError", err)
	}
	if pe.Code != code {
		t.Fatalf("error %q has close code %d, want %d", err, pe.Code, code)
	}
}
