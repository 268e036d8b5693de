// Package fuzz holds the fuzz targets of wskit. They test the library from
// outside, through its exported API, and run as ordinary tests over their
// seed corpora (f.Add seeds and testdata/fuzz/<Name>/):
//
//	go test ./fuzz
//	go test ./fuzz -run '^$' -fuzz '^FuzzDecoderChunking$' -fuzztime 60s -parallel 1
//
// The central property is that the codec does not care how its input is cut:
// a byte stream fed whole, in arbitrary pieces or byte by byte yields the
// same frames, events, replies and errors.
package fuzz

import (
	"errors"
	"testing"

	"github.com/wskit/wskit/frame"
)

// split cuts b into pieces whose lengths are the bytes of cuts, in order; a
// zero gives an empty piece. What remains of b after the cuts is the last piece.
func split(b, cuts []byte) [][]byte {
	pieces := make([][]byte, 0, len(cuts)+1)
	for _, c := range cuts {
		if len(b) == 0 {
			break
		}
		n := min(int(c), len(b))
		pieces = append(pieces, b[:n])
		b = b[n:]
	}
	return append(pieces, b)
}

// bytewise cuts b into pieces of one byte.
func bytewise(b []byte) [][]byte {
	pieces := make([][]byte, len(b))
	for i := range b {
		pieces[i] = b[i : i+1]
	}
	return pieces
}

// closeCode returns the close code of a *frame.ProtocolError in err's chain.
func closeCode(err error) (frame.CloseCode, bool) {
	var pe *frame.ProtocolError
	if errors.As(err, &pe) {
		return pe.Code, true
	}
	return 0, false
}

// sameError reports whether a and b are the same failure: both nil, or the
// same error value or text, with the same close code.
func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	if !errors.Is(a, b) && a.Error() != b.Error() {
		return false
	}
	ca, oka := closeCode(a)
	cb, okb := closeCode(b)
	return oka == okb && ca == cb
}

// checkSameError fails t when two runs over the same input ended differently.
func checkSameError(t *testing.T, what string, got, want error) {
	t.Helper()
	if !sameError(got, want) {
		t.Fatalf("%s: error %v, but %v when fed whole", what, got, want)
	}
}

// unmask returns a copy of p XORed with key, the first byte with key[0].
// It is written here, apart from frame.Mask, to check it.
func unmask(p []byte, key [4]byte) []byte {
	out := make([]byte, len(p))
	for i, c := range p {
		out[i] = c ^ key[i%4]
	}
	return out
}
