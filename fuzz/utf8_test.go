package fuzz

import (
	"testing"
	"unicode/utf8"

	"github.com/wskit/wskit/frame"
)

// completable reports whether some bytes appended to p can make it valid
// UTF-8: p is valid up to a tail of at most three bytes that begins an
// encoding it does not finish. utf8.FullRune is false exactly for such
// tails (an invalid tail counts as a full rune of one byte).
func completable(p []byte) bool {
	for k := 0; k <= 3 && k <= len(p); k++ {
		head, tail := p[:len(p)-k], p[len(p)-k:]
		if utf8.Valid(head) && (k == 0 || !utf8.FullRune(tail)) {
			return true
		}
	}
	return false
}

func TestCompletable(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", true},
		{"abc", true},
		{"\xe2", true},
		{"\xe2\x82", true},
		{"\xe2\x82\xac", true},
		{"a\xf0\x9f\x99", true},
		{"\xff", false},
		{"\xc0", false},      // only overlong encodings start with C0
		{"\xed\xa0", false},  // a UTF-16 surrogate
		{"\xf4\x90", false},  // above U+10FFFF
		{"\xe0\x80", false},  // overlong
		{"\xe2\x82a", false}, // a sequence broken by ASCII
		{"\x80", false},      // a lone continuation byte
		{"\xe2\x82\xac\x80", false},
	}
	for _, tc := range tests {
		if got := completable([]byte(tc.in)); got != tc.want {
			t.Errorf("completable(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// FuzzUTF8 checks frame.ValidUTF8 and frame.UTF8Validator against
// unicode/utf8: the validator, fed b in pieces, must accept every piece
// exactly while what it has seen can still become valid UTF-8, and its
// Complete must agree with utf8.Valid.
func FuzzUTF8(f *testing.F) {
	seeds := []string{
		"",
		"hello",
		"héllo wörld",
		"日本語のテキスト",
		"🙂 emoji 🚀",
		"\x00\x7f",
		"\xc2\x80\xdf\xbf",                 // two-byte edges
		"\xe0\xa0\x80\xef\xbf\xbf",         // three-byte edges
		"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", // four-byte edges
		"\xed\x9f\xbf\xee\x80\x80",         // around the surrogates
		"\xed\xa0\x80",                     // a surrogate
		"\xc0\xaf",                         // overlong
		"\xe0\x80\xaf",                     // overlong
		"\xf4\x90\x80\x80",                 // above U+10FFFF
		"\xf5\x80\x80\x80",
		"\xff\xfe",
		"abc\xe2\x82",      // cut at the end
		"\xe2\x82\xac\x80", // stray continuation
		"κόσμε\xce",
		"0123456789abcdef0123456789abcdef€0123456789abcdef", // long ASCII runs around a rune
	}
	for i, s := range seeds {
		f.Add([]byte(s), []byte{byte(i % 5), 1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, b, cuts []byte) {
		want := utf8.Valid(b)
		if got := frame.ValidUTF8(b); got != want {
			t.Fatalf("ValidUTF8(%q) = %v, utf8.Valid says %v", b, got, want)
		}

		var v frame.UTF8Validator
		fed := 0
		failed := false
		for _, piece := range split(b, cuts) {
			ok := v.Write(piece)
			fed += len(piece)
			seen := b[:fed]
			switch {
			case failed && ok:
				t.Fatalf("Write accepted %q after an earlier Write failed (input %q)", piece, b)
			case !failed && !ok && completable(seen):
				t.Fatalf("Write(%q) failed, but %q can still become valid UTF-8 (input %q)", piece, seen, b)
			case !failed && ok && !completable(seen):
				t.Fatalf("Write(%q) accepted %q, which no bytes can make valid UTF-8 (input %q)", piece, seen, b)
			}
			if !ok {
				failed = true
			}
		}
		if failed && want {
			t.Fatalf("a Write failed on %q, which is valid UTF-8", b)
		}
		if got := v.Complete(); got != want {
			t.Fatalf("Complete() after %q in pieces %q = %v, utf8.Valid says %v", b, split(b, cuts), got, want)
		}

		// Reset makes the validator new again.
		v.Reset()
		if got := v.Write(b); got != completable(b) {
			t.Fatalf("after Reset: Write(%q) = %v, want %v", b, got, completable(b))
		}
		if got := v.Complete(); got != want {
			t.Fatalf("after Reset: Complete() on %q = %v, want %v", b, got, want)
		}
	})
}
