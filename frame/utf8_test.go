package frame

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var utf8Cases = []struct {
	name  string
	in    string
	valid bool
}{
	{"empty", "", true},
	{"ascii", "Hello, World!", true},
	{"ascii long", strings.Repeat("0123456789abcdef", 9) + "xyz", true},
	{"nul and del", "\x00\x7f", true},

	// First and last code points of each length, and the edges around them.
	{"U+0080", "\xc2\x80", true},
	{"U+07FF", "\xdf\xbf", true},
	{"U+0800", "\xe0\xa0\x80", true},
	{"U+FFFF", "\xef\xbf\xbf", true},
	{"U+10000", "\xf0\x90\x80\x80", true},
	{"U+10FFFF", "\xf4\x8f\xbf\xbf", true},
	{"U+110000", "\xf4\x90\x80\x80", false},
	{"U+13FFFF", "\xf4\xbf\xbf\xbf", false},
	{"lead F5", "\xf5\x80\x80\x80", false},
	{"lead F7", "\xf7\xbf\xbf\xbf", false},
	{"U+D7FF", "\xed\x9f\xbf", true},
	{"U+E000", "\xee\x80\x80", true},
	{"U+FFFD", "\xef\xbf\xbd", true},
	{"U+FFFE", "\xef\xbf\xbe", true},
	{"U+1FFFF", "\xf0\x9f\xbf\xbf", true},

	// Overlong forms.
	{"overlong NUL 2", "\xc0\x80", false},
	{"overlong NUL 3", "\xe0\x80\x80", false},
	{"overlong NUL 4", "\xf0\x80\x80\x80", false},
	{"overlong slash 2", "\xc0\xaf", false},
	{"overlong slash 3", "\xe0\x80\xaf", false},
	{"overlong slash 4", "\xf0\x80\x80\xaf", false},
	{"max overlong 2", "\xc1\xbf", false},
	{"max overlong 3", "\xe0\x9f\xbf", false},
	{"max overlong 4", "\xf0\x8f\xbf\xbf", false},

	// Surrogates, single and paired.
	{"U+D800", "\xed\xa0\x80", false},
	{"U+DB7F", "\xed\xad\xbf", false},
	{"U+DB80", "\xed\xae\x80", false},
	{"U+DBFF", "\xed\xaf\xbf", false},
	{"U+DC00", "\xed\xb0\x80", false},
	{"U+DF80", "\xed\xbe\x80", false},
	{"U+DFFF", "\xed\xbf\xbf", false},
	{"pair D800 DC00", "\xed\xa0\x80\xed\xb0\x80", false},
	{"pair DBFF DFFF", "\xed\xaf\xbf\xed\xbf\xbf", false},

	// Stray continuation bytes and impossible bytes.
	{"lone 80", "\x80", false},
	{"lone BF", "\xbf", false},
	{"80 BF", "\x80\xbf", false},
	{"80 BF 80 BF", "\x80\xbf\x80\xbf", false},
	{"continuation after 2", "\xc2\x80\x80", false},
	{"continuation after 3", "\xe2\x82\xac\x80", false},
	{"continuation after 4", "\xf0\x9f\x98\x80\x80", false},
	{"lone C0", "\xc0", false},
	{"lone C1", "a\xc1b", false},
	{"FE", "\xfe", false},
	{"FF", "\xff", false},
	{"FE FE FF FF", "\xfe\xfe\xff\xff", false},
	{"5 byte form", "\xf8\x88\x80\x80\x80", false},
	{"6 byte form", "\xfc\x84\x80\x80\x80\x80", false},
	{"lone starts spaced", "\xc0 \xc1 \xc2 ", false},

	// Truncated and interrupted sequences.
	{"cut 2 of 2", "\xdf", false},
	{"cut 2 of 3", "\xef\xbf", false},
	{"cut 3 of 4", "\xf4\x8f\xbf", false},
	{"cut then ascii", "\xe2\x82a", false},
	{"cut then lead", "\xe2\x82\xe2\x82\xac", false},
	{"concatenated cuts", "\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80\xdf\xef\xbf\xf7\xbf\xbf", false},

	// Autobahn 6.x text.
	{"6.2", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", true},
	{"6.3 kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true},
	{"6.3 kosme edited", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", false},
	{"6.4 kosme U+110000", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64", false},

	// Errors at every position of the word-sized fast paths.
	{"error at 7", "0123456\x80abcdefghijklmnop", false},
	{"error at 8", "01234567\xffabcdefghijklmnop", false},
	{"error at 15", "0123456789abcde\xc0\x80ghijklmnop", false},
	{"error at 16", "0123456789abcdef\xed\xa0\x80ijklmnop", false},
	{"error at end", "0123456789abcdef0123456789abcde\xf4\x90\x80\x80", false},
	{"japanese", "吾輩は猫である。名前はまだ無い。", true},
	{"japanese then surrogate", "吾輩は猫である。\xed\xb0\x80名前はまだ無い。", false},
	{"japanese then overlong", "吾輩は猫である。\xe0\x9f\xbf名前はまだ無い。", false},
	{"hindi (E0 leads)", "हिन्दी में लिखा गया पाठ", true},
	{"korean (ED leads)", "한국어 텍스트 힣힣힣 입니다", true},
	{"cyrillic", "Съешь же ещё этих мягких французских булок", true},
	{"emoji", "🎉🎉🎉🎉 party 😀😀😀😀😀😀😀", true},
	{"emoji cut inside run", "🎉🎉🎉🎉\xf0\x9f\x8e🎉🎉🎉🎉🎉🎉", false},
}

// utf8Contexts surround each table case with valid text, which leaves its
// verdict unchanged but moves it into every code path: short input, word-sized
// ASCII steps, runs of two- and three-byte sequences, the last 8 bytes.
var utf8Contexts = [][2]string{
	{"", ""},
	{"0123456789abcdef0123456789abcdef", "0123456789abcdef"},
	{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234", "."},
	{"吾輩は猫である。名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。"},
	{"Съешь же ещё этих мягких", "французских булок"},
	{"🎉🎉🎉🎉🎉", "🎉🎉🎉🎉🎉"},
	{"x", "0123456789abcdef"},
	{"0123456789abcdef", "x"},
}

func TestUTF8Table(t *testing.T) {
	for _, tc := range utf8Cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, ctx := range utf8Contexts {
				p := []byte(ctx[0] + tc.in + ctx[1])
				if utf8.Valid(p) != tc.valid {
					t.Fatalf("bad table entry: utf8.Valid(%q) = %v", p, !tc.valid)
				}
				if got := ValidUTF8(p); got != tc.valid {
					t.Errorf("ValidUTF8(%q) = %v, want %v", p, got, tc.valid)
				}
				var v UTF8Validator
				if got := v.Write(p) && v.Complete(); got != tc.valid {
					t.Errorf("one Write(%q): verdict %v, want %v", p, got, tc.valid)
				}
				v.Reset()
				ok := true
				for i := range p {
					ok = v.Write(p[i:i+1]) && ok
				}
				if got := ok && v.Complete(); got != tc.valid {
					t.Errorf("byte by byte %q: verdict %v, want %v", p, got, tc.valid)
				}
			}
		})
	}
}

// Each chunk's Write result, then Complete at the end.
var utf8ChunkCases = []struct {
	name     string
	chunks   []string
	writes   []bool
	complete bool
}{
	{"cut 2-byte", []string{"a\xc3"}, []bool{true}, false},
	{"cut 3-byte", []string{"\xe2\x82"}, []bool{true}, false},
	{"cut 4-byte after 1", []string{"\xf0"}, []bool{true}, false},
	{"cut 4-byte after 3", []string{"\xf0\x9f\x98"}, []bool{true}, false},
	{"cut U+10FFFF", []string{"\xf4\x8f\xbf"}, []bool{true}, false},
	{"cut U+D7FF", []string{"\xed\x9f"}, []bool{true}, false},
	{"cut U+0800", []string{"\xe0\xa0"}, []bool{true}, false},
	{"resumed 3-byte", []string{"\xe2", "\x82", "\xac"}, []bool{true, true, true}, true},
	{"resumed 4-byte", []string{"x\xf0\x9f", "\x98\x80y"}, []bool{true, true}, true},
	{"resumed then more", []string{"\xe3\x81", "\x82\xe3\x81\x84\xe3", "\x81\x86"}, []bool{true, true, true}, true},
	{"empty writes", []string{"", "\xe2", "", "\x82\xac", ""}, []bool{true, true, true, true, true}, true},
	{"long chunk cut", []string{strings.Repeat("a", 40) + "日本\xe2\x82", "\xac" + strings.Repeat("b", 40)}, []bool{true, true}, true},
	{"long chunk cut after 1", []string{"吾輩は猫である。名前はまだ無い\xe3", "\x80\x82"}, []bool{true, true}, true},
	{"long chunk, bad cut", []string{strings.Repeat("a", 40) + "\xf4\x90"}, []bool{false}, false},

	// No completion exists: reported at once, even at the end of a chunk.
	{"lone C0", []string{"\xc0"}, []bool{false}, false},
	{"lone C1", []string{"ab\xc1"}, []bool{false}, false},
	{"lone F5", []string{"\xf5"}, []bool{false}, false},
	{"lone FF", []string{"\xff"}, []bool{false}, false},
	{"stray continuation", []string{"abc\x80"}, []bool{false}, false},
	{"E0 80 at end", []string{"\xe0\x80"}, []bool{false}, false},
	{"ED A0 at end", []string{"\xed\xa0"}, []bool{false}, false},
	{"F0 80 at end", []string{"\xf0\x80"}, []bool{false}, false},
	{"F4 90 at end", []string{"\xf4\x90"}, []bool{false}, false},
	{"E0 then 80", []string{"\xe0", "\x80"}, []bool{true, false}, false},
	{"ED then A0", []string{"\xed", "\xa0\x80"}, []bool{true, false}, false},
	{"F0 then 8F", []string{"\xf0", "\x8f"}, []bool{true, false}, false},
	{"F4 then 90", []string{"\xf4", "\x90\x80\x80"}, []bool{true, false}, false},
	{"cut then ASCII", []string{"\xe2\x82", "a"}, []bool{true, false}, false},
	{"3-byte cut, bad third", []string{"\xe2\x82\xc0"}, []bool{false}, false},
	{"4-byte cut, bad fourth", []string{"\xf0\x9f\x98", "\x28"}, []bool{true, false}, false},
	{"stays failed", []string{"\xff", "abc", ""}, []bool{false, false, false}, false},

	// Autobahn 6.4.1 and 6.4.2: the error is in the middle fragment.
	{"6.4.1", []string{"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", "\xf4\x90\x80\x80", "\x65\x64\x69\x74\x65\x64"}, []bool{true, false, false}, false},
	{"6.4.2", []string{"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4", "\x90", "\x80\x80\x65\x64\x69\x74\x65\x64"}, []bool{true, false, false}, false},
	// Autobahn 6.6: κόσμε built up one byte at a time.
	{"6.6", []string{"\xce", "\xba", "\xe1", "\xbd", "\xb9", "\xcf", "\x83", "\xce", "\xbc", "\xce", "\xb5"},
		[]bool{true, true, true, true, true, true, true, true, true, true, true}, true},
}

func TestUTF8Chunks(t *testing.T) {
	for _, tc := range utf8ChunkCases {
		t.Run(tc.name, func(t *testing.T) {
			var v UTF8Validator
			for i, c := range tc.chunks {
				if got := v.Write([]byte(c)); got != tc.writes[i] {
					t.Fatalf("Write(chunk %d %q) = %v, want %v", i, c, got, tc.writes[i])
				}
			}
			if got := v.Complete(); got != tc.complete {
				t.Errorf("Complete() = %v, want %v", got, tc.complete)
			}
		})
	}
}

func TestUTF8Reset(t *testing.T) {
	var v UTF8Validator
	if v.Write([]byte("\xed\xa0\x80")) {
		t.Fatal("surrogate accepted")
	}
	if v.Write([]byte("ok")) || v.Complete() {
		t.Fatal("validator recovered from an error without Reset")
	}
	v.Reset()
	if !v.Write([]byte("ok \xe2\x82")) || v.Complete() {
		t.Fatal("after Reset: valid start rejected or cut sequence taken as complete")
	}
	v.Reset()
	if v.Write([]byte("\xac")) {
		t.Fatal("pending sequence survived Reset")
	}
}

// utf8EdgeBytes are the bytes at the edges of the ranges that validity depends on.
var utf8EdgeBytes = []byte{
	0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
	0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8, 0xfe, 0xff,
}

// utf8BadSeqs are the sequences just outside each range that validity depends on.
var utf8BadSeqs = []string{
	"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
	"\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80",
	"\x80", "\xbf", "\xe2\x82", "\xf0\x9f\x98", "\xc3",
}

// randUTF8ish returns valid UTF-8 made of long runs (to reach the word-sized
// paths) with, usually, a few errors at random places: edge bytes, cut
// sequences, surrogates; or, sometimes, dense noise.
func randUTF8ish(r *rand.Rand, maxLen int) []byte {
	p := make([]byte, 0, maxLen+8)
	target := r.IntN(maxLen + 1)
	mode := r.IntN(5) // 0 ascii-heavy, 1 3-byte heavy, 2 and 3 mixed, 4 noise
	for len(p) < target {
		switch k := r.IntN(20); {
		case mode == 4 && k < 10:
			p = append(p, utf8EdgeBytes[r.IntN(len(utf8EdgeBytes))])
		case k == 0:
			// A random code point, edges included.
			var c rune
			switch r.IntN(4) {
			case 0:
				c = rune(r.IntN(0x800))
			case 1:
				c = rune(r.IntN(0x10000))
			case 2:
				c = 0x10000 + rune(r.IntN(0x100000))
			default:
				c = []rune{0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xffff, 0x10000, 0x10ffff}[r.IntN(9)]
			}
			p = utf8.AppendRune(p, c) // a surrogate becomes U+FFFD
		case mode == 0 || k < 8:
			for n := r.IntN(40); n > 0; n-- {
				p = append(p, byte(0x20+r.IntN(0x5f)))
			}
		case mode == 1 || k < 14:
			for n := r.IntN(20); n > 0; n-- {
				p = utf8.AppendRune(p, 0x3041+rune(r.IntN(0x6000)))
			}
		default:
			for n := r.IntN(10); n > 0; n-- {
				p = utf8.AppendRune(p, []rune{'é', 'ü', 'Ж', '€', '中', '한', 'ह', '🎉', '😀', 'x', ' '}[r.IntN(11)])
			}
		}
	}
	for n := r.IntN(3); n > 0 && len(p) > 0; n-- {
		i := r.IntN(len(p))
		switch r.IntN(5) {
		case 4:
			bad := utf8BadSeqs[r.IntN(len(utf8BadSeqs))]
			p = append(p[:i], append([]byte(bad), p[i:]...)...)
		case 0:
			for j := i + r.IntN(4); i <= j && i < len(p); i++ {
				p[i] = utf8EdgeBytes[r.IntN(len(utf8EdgeBytes))]
			}
		case 1:
			p[i] = byte(r.Uint32())
		case 2:
			p = append(p[:i], p[i+1:]...) // may cut a sequence
		default:
			c := 0xd800 + r.IntN(0x800) // a surrogate, encoded by hand
			p = append(p[:i], append([]byte{0xed, byte(0x80 | c>>6&0x3f), byte(0x80 | c&0x3f)}, p[i:]...)...)
		}
	}
	return p
}

// randSplit cuts p into pieces at random points (empty pieces included).
func randSplit(r *rand.Rand, p []byte) [][]byte {
	var out [][]byte
	for len(p) > 0 {
		n := r.IntN(len(p) + 1)
		if r.IntN(4) == 0 {
			n = r.IntN(min(len(p), 4) + 1)
		}
		out = append(out, p[:n])
		p = p[n:]
	}
	return append(out, p)
}

func TestUTF8Differential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	var valid int
	for it := 0; it < n; it++ {
		p := randUTF8ish(r, []int{8, 40, 300, 3000}[it%4])
		want := utf8.Valid(p)
		if want {
			valid++
		}
		if got := ValidUTF8(p); got != want {
			t.Fatalf("ValidUTF8(%q) = %v, want %v", p, got, want)
		}
		var v UTF8Validator
		if got := v.Write(p) && v.Complete(); got != want {
			t.Fatalf("one Write(%q): verdict %v, want %v", p, got, want)
		}
		v.Reset()
		pieces := randSplit(r, p)
		ok := true
		for _, c := range pieces {
			ok = v.Write(c) && ok
		}
		if got := ok && v.Complete(); got != want {
			t.Fatalf("Write in pieces %q: verdict %v, want %v", pieces, got, want)
		}
	}
	// The generator must produce both outcomes in earnest.
	if valid < n/10 || valid > n*9/10 {
		t.Fatalf("generator skewed: %d of %d inputs valid", valid, n)
	}
}

// completable reports whether some continuation of q is valid UTF-8, by brute
// force: at most three more bytes, each from a set that meets every range a
// continuation byte may have to fall in.
func completable(q []byte) bool {
	cont := []byte{0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf}
	buf := append(make([]byte, 0, len(q)+3), q...)
	var try func(b []byte, more int) bool
	try = func(b []byte, more int) bool {
		if utf8.Valid(b) {
			return true
		}
		if more == 0 {
			return false
		}
		for _, c := range cont {
			if try(append(b, c), more-1) {
				return true
			}
		}
		return false
	}
	return try(buf, 3)
}

func TestUTF8FailFast(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n := 3000
	if testing.Short() {
		n = 300
	}
	var cut, failed int
	for it := 0; it < n; it++ {
		p := randUTF8ish(r, []int{12, 60, 200}[it%3])
		// want[k]: p[:k] has a valid continuation. Once false it stays
		// false, so the brute force stops at the first false.
		want := make([]bool, len(p)+1)
		for k := range want {
			want[k] = (k == 0 || want[k-1]) && completable(p[:k])
			if want[k] && !utf8.Valid(p[:k]) {
				cut++
			}
		}
		if !want[len(p)] {
			failed++
		}

		// A fresh validator per prefix, in one Write.
		for k := range want {
			var v UTF8Validator
			if got := v.Write(p[:k]); got != want[k] {
				t.Fatalf("Write(%q) = %v, want %v", p[:k], got, want[k])
			}
			if got, w := v.Complete(), want[k] && utf8.Valid(p[:k]); got != w {
				t.Fatalf("after Write(%q): Complete() = %v, want %v", p[:k], got, w)
			}
		}

		// One validator, byte by byte: each Write reports the prefix so far.
		var v UTF8Validator
		for k := 1; k <= len(p); k++ {
			if got := v.Write(p[k-1 : k]); got != want[k] {
				t.Fatalf("byte by byte, Write of byte %d of %q = %v, want %v", k-1, p, got, want[k])
			}
		}

		// One validator, random pieces.
		v.Reset()
		k := 0
		for _, c := range randSplit(r, p) {
			k += len(c)
			if got := v.Write(c); got != want[k] {
				t.Fatalf("pieces, Write ending at %d of %q = %v, want %v", k, p, got, want[k])
			}
		}
	}
	if cut < n/2 || failed < n/10 {
		t.Fatalf("generator too tame: %d cut prefixes, %d failing inputs of %d", cut, failed, n)
	}
}

func TestUTF8Allocs(t *testing.T) {
	p := []byte(strings.Repeat("héllo 世界 🎉 ", 50))
	var v UTF8Validator
	if a := testing.AllocsPerRun(100, func() {
		v.Reset()
		v.Write(p[:7])
		v.Write(p[7:])
		v.Complete()
	}); a != 0 {
		t.Errorf("Write allocates %v times per run", a)
	}
	if a := testing.AllocsPerRun(100, func() { ValidUTF8(p) }); a != 0 {
		t.Errorf("ValidUTF8 allocates %v times per run", a)
	}
}

// benchText repeats s and cuts it at a sequence boundary, padding with spaces
// to exactly n bytes.
func benchText(s string, n int) []byte {
	p := []byte(strings.Repeat(s, n/len(s)+1))[:n]
	for len(p) > 0 && !utf8.Valid(p) {
		p = p[:len(p)-1]
	}
	for len(p) < n {
		p = append(p, ' ')
	}
	return p
}

var utf8Sink bool

func BenchmarkUTF8(b *testing.B) {
	inputs := []struct{ name, text string }{
		{"ascii", "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n"},
		{"japanese", "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。\n"},
		{"mixed", "Our café in Zürich serves crème brûlée 🍮 and naïve jalapeño dishes; the 東京 branch says こんにちは 👋 to every customer. "},
	}
	for _, in := range inputs {
		for _, size := range []int{64, 1024, 64 << 10} {
			p := benchText(in.text, size)
			if !utf8.Valid(p) {
				b.Fatal("bad benchmark input")
			}
			name := in.name + "/" + strconv.Itoa(size)
			b.Run(name+"/wskit", func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				b.ReportAllocs()
				for b.Loop() {
					utf8Sink = ValidUTF8(p)
				}
			})
			b.Run(name+"/write", func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				b.ReportAllocs()
				var v UTF8Validator
				for b.Loop() {
					v.Reset()
					utf8Sink = v.Write(p) && v.Complete()
				}
			})
			b.Run(name+"/stdlib", func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				b.ReportAllocs()
				for b.Loop() {
					utf8Sink = utf8.Valid(p)
				}
			})
		}
	}
}
