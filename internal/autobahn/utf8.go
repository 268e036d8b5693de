package autobahn

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// 6 UTF-8 Handling, after case6_*.py and case6_x_x.py.

const (
	kosme     = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" // κόσμε
	helloUTF8 = "Hello-µ@ßöäüàá-UTF-8!!"
)

func utf8Cases() []Case {
	echo := func(id, desc string, send func(s *session), want string) Case {
		return newCase(id, desc, "The message is echo'ed back to us.", func(s *session) {
			s.expect(OK, message(want, false))
			s.expectNormalClose()
			send(s)
			s.closeAfter(sec)
		})
	}
	cs := []Case{
		newCase("6.1.1", "Send text message of length 0.", "A message is echo'ed back to us (with empty payload).", func(s *session) {
			s.expect(OK, message("", false))
			s.expectNormalClose()
			s.sendFrame(1, "")
			s.closeAfter(sec)
		}),
		newCase("6.1.2", "Send fragmented text message, 3 fragments each of length 0.", "A message is echo'ed back to us (with empty payload).", func(s *session) {
			s.expect(OK, message("", false))
			s.expectNormalClose()
			s.sendFrame(1, "", noFin)
			s.sendFrame(0, "", noFin)
			s.sendFrame(0, "")
			s.closeAfter(sec)
		}),
		newCase("6.1.3", "Send fragmented text message, 3 fragments, first and last of length 0, middle non-empty.", "A message is echo'ed back to us (with payload = payload of middle fragment).", func(s *session) {
			s.expect(OK, message("middle frame payload", false))
			s.expectNormalClose()
			s.sendFrame(1, "", noFin)
			s.sendFrame(0, "middle frame payload", noFin)
			s.sendFrame(0, "")
			s.closeAfter(sec)
		}),
		echo("6.2.1", "Send a valid UTF-8 text message in one fragment. MESSAGE: "+hexOf(helloUTF8),
			func(s *session) { s.sendMessage(helloUTF8, false, 0) }, helloUTF8),
		echo("6.2.2", "Send a valid UTF-8 text message in two fragments, fragmented on UTF-8 code point boundary.",
			func(s *session) {
				s.sendFrame(1, "Hello-µ@ßöä", noFin)
				s.sendFrame(0, "üàá-UTF-8!!")
			}, helloUTF8),
		echo("6.2.3", "Send a valid UTF-8 text message in fragments of 1 octet, resulting in frames ending on positions which are not code point ends. MESSAGE: "+hexOf(helloUTF8),
			func(s *session) { s.sendMessage(helloUTF8, false, 1) }, helloUTF8),
		echo("6.2.4", "Send a valid UTF-8 text message in fragments of 1 octet, resulting in frames ending on positions which are not code point ends. MESSAGE: "+hexOf(kosme),
			func(s *session) { s.sendMessage(kosme, false, 1) }, kosme),
	}

	// 6.3: invalid exactly on byte 12 (\xa0).
	invalid := kosme + "\xed\xa0\x80" + "edited"
	for i, frag := range []int{0, 1} {
		desc := "Send invalid UTF-8 text message unfragmented. MESSAGE: " + hexOf(invalid)
		if frag == 1 {
			desc = "Send invalid UTF-8 text message in fragments of 1 octet, resulting in frames ending on positions which are not code point ends. MESSAGE: " + hexOf(invalid)
		}
		cs = append(cs, newCase(fmt.Sprintf("6.3.%d", i+1), desc, "The connection is failed immediately, since the payload is not valid UTF-8.", func(s *session) {
			s.expect(OK)
			s.expectInvalidUTF8()
			s.sendMessage(invalid, false, frag)
			s.killAfter(sec)
		}))
	}

	// 6.4: fail fast. The invalid part (U+110000 in UTF-8's integer scheme)
	// comes after a 1 s wait; a server that fails then is OK, one that fails
	// only once the message is complete NON-STRICT.
	const part1, part2, part3 = kosme, "\xf4\x90\x80\x80", "edited"
	full := part1 + part2 + part3
	failFastExp := "The first frame is accepted, we expect to timeout on the first wait. The 2nd frame should be rejected immediately (fail fast on UTF-8). If we timeout, we expect the connection is failed at least then, since the complete message payload is not valid UTF-8."
	threeFrames := func(id, desc string, parts [3]string) Case {
		return failFast(id, desc, failFastExp,
			func(s *session) { s.sendFrame(1, parts[0], noFin) },
			func(s *session) { s.sendFrame(0, parts[1], noFin) },
			func(s *session) { s.sendFrame(0, parts[2]) })
	}
	threeChops := func(id, desc string, parts [3]string) Case {
		return failFast(id, desc, strings.ReplaceAll(failFastExp, "frame", "chop"),
			func(s *session) {
				s.beginMessage(false)
				s.beginMessageFrame(len(full))
				s.sendMessageFrameData(parts[0])
			},
			func(s *session) { s.sendMessageFrameData(parts[1]) },
			func(s *session) {
				s.sendMessageFrameData(parts[2])
				s.endMessage()
			})
	}
	cs = append(cs,
		threeFrames("6.4.1", "Send invalid UTF-8 text message in 3 fragments (frames). First frame payload is valid, then wait, then 2nd frame which contains the payload making the sequence invalid, then wait, then 3rd frame with rest. Note that PART1 and PART3 are valid UTF-8 in themselves, PART2 is a 0x110000 encoded as in the UTF-8 integer encoding scheme, but the codepoint is invalid (out of range).",
			[3]string{part1, part2, part3}),
		threeFrames("6.4.2", "Same as Case 6.4.1, but in 2nd frame, we send only up to and including the octet making the complete payload invalid.",
			[3]string{full[:12], full[12:13], full[13:]}),
		threeChops("6.4.3", "Same as Case 6.4.1, but we send message not in 3 frames, but in 3 chops of the same message frame.",
			[3]string{part1, part2, part3}),
		threeChops("6.4.4", "Same as Case 6.4.2, but we send message not in 3 frames, but in 3 chops of the same message frame.",
			[3]string{full[:12], full[12:13], full[13:]}),
	)

	// 6.5 to 6.23: one text frame per sequence of the UTF-8 decoder tests.
	for i, g := range utf8Groups() {
		for j, seq := range g.seqs {
			desc := "Send a text message with payload which is not valid UTF-8 in one fragment. Payload: 0x" + fmt.Sprintf("%x", seq.p)
			exp := "The connection is failed immediately, since the payload is not valid UTF-8."
			if seq.valid {
				desc = "Send a text message with payload which is valid UTF-8 in one fragment. Payload: 0x" + fmt.Sprintf("%x", seq.p)
				exp = "The message is echo'ed back to us."
			}
			cs = append(cs, newCase(fmt.Sprintf("6.%d.%d", i+5, j+1), desc, exp, func(s *session) {
				if seq.valid {
					s.expect(OK, message(seq.p, false))
					s.expectNormalClose()
				} else {
					s.expect(OK)
					s.expectInvalidUTF8()
				}
				s.sendMessage(seq.p, false, 0)
				s.killAfter(500 * time.Millisecond)
			}))
		}
	}
	return cs
}

// expectInvalidUTF8: the server fails the connection with 1007, and a
// close by us (it never noticed) fails the case.
func (s *session) expectInvalidUTF8() {
	s.close = closeExpect{codes: []int{1007}, fatal: true}
}

// failFast builds a 6.4 case: part1, wait 1 s ("A"), part2, wait 1 s ("B"), part3.
func failFast(id, desc, exp string, part1, part2, part3 func(s *session)) Case {
	return newCase(id, desc, exp, func(s *session) {
		s.expect(OK, timeoutOf("A"))
		s.expect(NonStrict, timeoutOf("A"), timeoutOf("B"))
		s.expectInvalidUTF8()
		part1(s)
		s.continueLater(sec, func() {
			if s.state != stateOpen {
				return
			}
			s.received = append(s.received, timeoutOf("A"))
			part2(s)
			s.continueLater(sec, func() {
				if s.state != stateOpen {
					return
				}
				s.received = append(s.received, timeoutOf("B"))
				part3(s)
				s.killAfter(sec)
			})
		})
	})
}

func hexOf(s string) string { return fmt.Sprintf("%x", s) }

type utf8Seq struct {
	valid bool
	p     string
}

type utf8Group struct {
	name string
	seqs []utf8Seq
}

// utf8Groups is createUtf8TestSequences of case6_x_x.py, from Markus Kuhn's
// UTF-8-test.txt. Groups become subsections 6.5 to 6.23.
func utf8Groups() []utf8Group {
	v := func(ps ...string) []utf8Seq {
		var ss []utf8Seq
		for _, p := range ps {
			ss = append(ss, utf8Seq{true, p})
		}
		return ss
	}
	x := func(ps ...string) []utf8Seq {
		var ss []utf8Seq
		for _, p := range ps {
			ss = append(ss, utf8Seq{false, p})
		}
		return ss
	}
	var gs []utf8Group
	add := func(name string, seqs ...[]utf8Seq) {
		var all []utf8Seq
		for _, s := range seqs {
			all = append(all, s...)
		}
		gs = append(gs, utf8Group{name, all})
	}

	add("Some valid UTF-8 sequences", v("hello\x24world", "hello\xc2\xa2world", "hello\xe2\x82\xacworld", "hello\xf0\xa4\xad\xa2world", kosme))

	var prefixes []utf8Seq
	for i := 1; i <= len(kosme); i++ {
		prefixes = append(prefixes, utf8Seq{utf8.ValidString(kosme[:i]), kosme[:i]})
	}
	add("All prefixes of a valid UTF-8 string that contains multi-byte code points", prefixes)

	add("First possible sequence of a certain length", v("\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80"))
	add("First possible sequence length 5/6 (invalid codepoints)", x("\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80"))
	add("Last possible sequence of a certain length", v("\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"))
	add("Last possible sequence length 4/5/6 (invalid codepoints)", x("\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf"))
	add("Other boundary conditions", v("\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"), x("\xf4\x90\x80\x80"))

	var conts []byte
	for b := 0x80; b < 0xbf; b++ {
		conts = append(conts, byte(b))
	}
	add("Unexpected continuation bytes", x("\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80", "\x80\xbf\x80\xbf\x80\xbf", string(conts)))

	var lonely []string
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		var b []byte
		for c := r[0]; c < r[1]; c++ {
			b = append(b, byte(c), 0x20)
		}
		lonely = append(lonely, string(b))
	}
	add("Lonely start characters", x(lonely...))

	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	add("Sequences with last continuation byte missing", x(missing...))
	add("Concatenation of incomplete sequences", x(strings.Join(missing, "")))
	add("Impossible bytes", x("\xfe", "\xff", "\xfe\xfe\xff\xff"))
	add("Examples of an overlong ASCII character", x("\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf"))
	add("Maximum overlong sequences", x("\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf"))
	add("Overlong representation of the NUL character", x("\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80"))
	add("Single UTF-16 surrogates", x("\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf"))
	add("Paired UTF-16 surrogates", x("\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
		"\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf"))

	// Non-characters are valid UTF-8 (RFC 3629).
	nonChars := v("\xef\xbf\xbe", "\xef\xbf\xbf")
	for _, z1 := range []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4} {
		for _, z2 := range []byte{0x8f, 0x9f, 0xaf, 0xbf} {
			if z1 == 0xf4 && z2 != 0x8f {
				continue // above U+10FFFF
			}
			for _, z3 := range []byte{0xbe, 0xbf} {
				zz := string([]byte{z1, z2, 0xbf, z3})
				if zz == "\xf0\x8f\xbf\xbe" || zz == "\xf0\x8f\xbf\xbf" {
					continue // overlong
				}
				nonChars = append(nonChars, utf8Seq{true, zz})
			}
		}
	}
	add("Non-character code points (valid UTF-8)", nonChars)
	add("Unicode specials (i.e. replacement char)", v("\xef\xbf\xb9", "\xef\xbf\xba", "\xef\xbf\xbb", "\xef\xbf\xbc", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf"))
	return gs
}
