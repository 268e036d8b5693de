package autobahn

import (
	"fmt"
	"strings"
	"time"
)

// Cases of sections 1 to 5, 7 and 10, after autobahntestsuite/case/case*.py.
// Opcodes are written as numbers, as there: 0 continuation, 1 text,
// 2 binary, 8 close, 9 ping, 10 pong.

const (
	sec       = time.Second
	helloText = "Hello, world!"
)

func newCase(id, desc, expect string, open func(s *session)) Case {
	return Case{ID: id, Description: desc, Expectation: expect, limit: defaultLimit, open: open}
}

// 1 Framing.
func framingCases() []Case {
	var cs []Case
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536, 65536}
	for sub, kind := range []string{"text", "binary"} {
		for i, n := range sizes {
			op, fill, bin := byte(1), "*", false
			if kind == "binary" {
				op, fill, bin = 2, "\xfe", true
			}
			p := strings.Repeat(fill, n)
			desc := fmt.Sprintf("Send %s message message with payload of length %d.", kind, n)
			if n == 0 {
				desc = fmt.Sprintf("Send %s message with payload 0.", kind)
			}
			ch := 0
			if i == 7 {
				ch = 997
				desc += " Sent out data in chops of 997 octets."
			}
			kill := sec
			if n > 128 {
				kill = 10 * sec
			}
			cs = append(cs, newCase(fmt.Sprintf("1.%d.%d", sub+1, i+1), desc,
				fmt.Sprintf("Receive echo'ed %s message (with payload as sent). Clean close with normal code.", kind),
				func(s *session) {
					s.expect(OK, message(p, bin))
					s.expectNormalClose()
					s.sendFrame(op, p, chop(ch))
					s.killAfter(kill)
				}))
		}
	}
	return cs
}

// 2 Pings/Pongs.
func pingCases() []Case {
	const pongExp = "Pong with payload echo'ed is sent in reply to Ping. Clean close with normal code."
	ping := func(id, desc, p string, ch int, wait time.Duration) Case {
		return newCase(id, desc, pongExp, func(s *session) {
			s.expect(OK, pongOf(p))
			s.expectNormalClose()
			s.sendFrame(9, p, chop(ch))
			s.closeAfter(wait)
		})
	}
	unsolicited := func(id, desc, p string) Case {
		return newCase(id, desc, "Nothing.", func(s *session) {
			s.expect(OK)
			s.expectNormalClose()
			s.sendFrame(10, p)
			s.sendClose(1000, "")
			s.closeAfter(sec)
		})
	}
	tenPings := func(id, desc string, ch int) Case {
		return newCase(id, desc, "Pongs for our Pings with all the payloads. Note: This is not required by the Spec .. but we check for this behaviour anyway. Clean close with normal code.",
			func(s *session) {
				var evs []event
				for i := range 10 {
					evs = append(evs, pongOf(fmt.Sprintf("payload-%d", i)))
				}
				s.expect(OK, evs...)
				for i := range 10 {
					s.sendFrame(9, fmt.Sprintf("payload-%d", i), chop(ch))
				}
				s.expectNormalClose()
				s.closeAfter(3 * sec)
			})
	}
	return []Case{
		newCase("2.1", "Send ping without payload.", "Pong (with empty payload) is sent in reply to Ping. Clean close with normal code.",
			func(s *session) {
				s.expect(OK, pongOf(""))
				s.expectNormalClose()
				s.sendFrame(9, "")
				s.closeAfter(sec)
			}),
		ping("2.2", "Send ping with small text payload.", helloText, 0, sec),
		ping("2.3", "Send ping with small binary (non UTF-8) payload.", "\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 0, sec),
		ping("2.4", "Send ping with binary payload of 125 octets.", strings.Repeat("\xfe", 125), 0, sec),
		newCase("2.5", "Send ping with binary payload of 126 octets.", "Connection is failed immediately (1002/Protocol Error), since control frames are only allowed to have payload up to and including 125 octets..",
			func(s *session) {
				s.expect(OK)
				s.expectFail(1002)
				s.sendFrame(9, strings.Repeat("\xfe", 126))
				s.killAfter(sec)
			}),
		ping("2.6", "Send ping with binary payload of 125 octets, send in octet-wise chops.", strings.Repeat("\xfe", 125), 1, 2*sec),
		unsolicited("2.7", "Send unsolicited pong without payload. Verify nothing is received. Clean close with normal code.", ""),
		unsolicited("2.8", "Send unsolicited pong with payload. Verify nothing is received. Clean close with normal code.", "unsolicited pong payload"),
		newCase("2.9", "Send unsolicited pong with payload. Send ping with payload. Verify pong for ping is received.",
			"Nothing in reply to own Pong, but Pong with payload echo'ed in reply to Ping. Clean close with normal code.",
			func(s *session) {
				s.expect(OK, pongOf("ping payload"))
				s.expectNormalClose()
				s.sendFrame(10, "unsolicited pong payload")
				s.sendFrame(9, "ping payload")
				s.closeAfter(sec)
			}),
		tenPings("2.10", "Send 10 Pings with payload.", 0),
		tenPings("2.11", "Send 10 Pings with payload. Send out octets in octet-wise chops.", 1),
	}
}

// 3 Reserved Bits.
func rsvCases() []Case {
	const failExp = "The connection is failed immediately, since RSV must be 0."
	const echoFailExp = "Echo for first message is received, but then connection is failed immediately, since RSV must be 0, when no extension defining RSV meaning has been negotiated. The Pong is not received."
	one := func(id, desc, exp string, op byte, p string, r byte) Case {
		return newCase(id, desc, exp, func(s *session) {
			s.expect(OK)
			s.expectFail(1002)
			s.sendFrame(op, p, rsv(r))
			s.killAfter(sec)
		})
	}
	three := func(id, desc string, r byte, o fopt) Case {
		return newCase(id, desc, echoFailExp, func(s *session) {
			s.expect(OK, message(helloText, false))
			s.expect(NonStrict)
			s.expectFail(1002)
			s.sendFrame(1, helloText, o)
			s.sendFrame(1, helloText, rsv(r), o)
			s.sendFrame(9, "", o)
			s.killAfter(sec)
		})
	}
	return []Case{
		one("3.1", "Send small text message with RSV = 1.", "The connection is failed immediately (1002/protocol error), since RSV must be 0, when no extension defining RSV meaning has been negoiated.", 1, helloText, 1),
		three("3.2", "Send small text message, then send again with RSV = 2, then send Ping.", 2, chop(0)),
		three("3.3", "Send small text message, then send again with RSV = 3, then send Ping. Octets are sent in frame-wise chops. Octets are sent in octet-wise chops.", 3, synced),
		three("3.4", "Send small text message, then send again with RSV = 4, then send Ping. Octets are sent in octet-wise chops.", 4, chop(1)),
		one("3.5", "Send small binary message with RSV = 5.", failExp, 2, "\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 5),
		// Autobahn describes 3.6 as a Ping but sends a binary frame.
		one("3.6", "Send Ping with RSV = 6.", failExp, 2, helloText, 6),
		one("3.7", "Send Close with RSV = 7.", failExp, 8, "", 7),
	}
}

// 4 Opcodes.
func opcodeCases() []Case {
	const failExp = "The connection is failed immediately."
	const echoFailExp = "Echo for first message is received, but then connection is failed immediately, since reserved opcode frame is used. A Pong is not received."
	one := func(id, desc string, op byte, p string) Case {
		return newCase(id, desc, failExp, func(s *session) {
			s.expect(OK)
			s.expectFail(1002)
			s.sendFrame(op, p)
			s.killAfter(sec)
		})
	}
	three := func(id, desc string, op byte, p string, o fopt) Case {
		return newCase(id, desc, echoFailExp, func(s *session) {
			s.expect(OK, message(helloText, false))
			s.expect(NonStrict)
			s.expectFail(1002)
			s.sendFrame(1, helloText, o)
			s.sendFrame(op, p, o)
			s.sendFrame(9, "", o)
			s.killAfter(sec)
		})
	}
	return []Case{
		one("4.1.1", "Send frame with reserved non-control Opcode = 3.", 3, ""),
		one("4.1.2", "Send frame with reserved non-control Opcode = 4 and non-empty payload.", 4, "reserved opcode payload"),
		three("4.1.3", "Send small text message, then send frame with reserved non-control Opcode = 5, then send Ping.", 5, "", chop(0)),
		three("4.1.4", "Send small text message, then send frame with reserved non-control Opcode = 6 and non-empty payload, then send Ping.", 6, helloText, chop(0)),
		three("4.1.5", "Send small text message, then send frame with reserved non-control Opcode = 7 and non-empty payload, then send Ping.", 7, helloText, chop(1)),
		one("4.2.1", "Send frame with reserved control Opcode = 11.", 11, ""),
		one("4.2.2", "Send frame with reserved control Opcode = 12 and non-empty payload.", 12, "reserved opcode payload"),
		three("4.2.3", "Send small text message, then send frame with reserved control Opcode = 13, then send Ping.", 13, "", chop(0)),
		three("4.2.4", "Send small text message, then send frame with reserved control Opcode = 14 and non-empty payload, then send Ping.", 14, helloText, chop(0)),
		three("4.2.5", "Send small text message, then send frame with reserved control Opcode = 15 and non-empty payload, then send Ping.", 15, helloText, chop(1)),
	}
}

// 5 Fragmentation.
func fragmentCases() []Case {
	const noContExp = "The connection is failed immediately, since there is no message to continue."
	fragControl := func(id, desc string, op byte) Case {
		return newCase(id, desc, "Connection is failed immediately, since control message MUST NOT be fragmented.", func(s *session) {
			s.expect(OK)
			s.expectFail(1002)
			s.sendFrame(op, "fragment1", noFin)
			s.sendFrame(0, "fragment2")
			s.killAfter(sec)
		})
	}
	twoFrags := func(id, desc string, o fopt) Case {
		return newCase(id, desc, "Message is processed and echo'ed back to us.", func(s *session) {
			s.expect(OK, message("fragment1fragment2", false))
			s.expectNormalClose()
			s.sendFrame(1, "fragment1", noFin, o)
			s.sendFrame(0, "fragment2", o)
			s.closeAfter(sec)
		})
	}
	pingBetween := func(id, desc string, o fopt) Case {
		return newCase(id, desc, "A pong is received, then the message is echo'ed back to us.", func(s *session) {
			s.expect(OK, pongOf("ping payload"), message("fragment1fragment2", false))
			s.expectNormalClose()
			s.sendFrame(1, "fragment1", noFin, o)
			s.sendFrame(9, "ping payload", o)
			s.sendFrame(0, "fragment2", o)
			s.closeAfter(sec)
		})
	}
	nothingToContinue := func(id, desc string, fin bool, o fopt) Case {
		return newCase(id, desc, noContExp, func(s *session) {
			s.expect(OK)
			s.expectFail(1002)
			s.sendFrame(0, "non-continuation payload", finIf(fin), o)
			s.sendFrame(1, helloText, o)
			s.killAfter(sec)
		})
	}
	repeated := func(id, desc string, fin bool) Case {
		return newCase(id, desc, noContExp, func(s *session) {
			s.expect(OK)
			s.expectFail(1002)
			for range 2 {
				s.sendFrame(0, "fragment1", finIf(fin))
				s.sendFrame(1, "fragment2", noFin)
				s.sendFrame(0, "fragment3")
			}
			s.killAfter(sec)
		})
	}
	pingPong := func(id, desc, exp string, sync bool) Case {
		return newCase(id, desc, exp, func(s *session) {
			frags := []string{"fragment1", "fragment2", "fragment3", "fragment4", "fragment5"}
			pings := []string{"pongme 1!", "pongme 2!"}
			s.expect(OK, pongOf(pings[0]), pongOf(pings[1]), message(strings.Join(frags, ""), false))
			s.expectNormalClose()
			o := withSync(sync)
			s.sendFrame(1, frags[0], noFin, o)
			s.sendFrame(0, frags[1], noFin, o)
			s.sendFrame(9, pings[0], o)
			s.continueLater(sec, func() {
				s.sendFrame(0, frags[2], noFin, o)
				s.sendFrame(0, frags[3], noFin, o)
				s.sendFrame(9, pings[1], o)
				s.sendFrame(0, frags[4], o)
				s.closeAfter(sec)
			})
		})
	}
	return []Case{
		fragControl("5.1", "Send Ping fragmented into 2 fragments.", 9),
		fragControl("5.2", "Send Pong fragmented into 2 fragments.", 10),
		twoFrags("5.3", "Send text Message fragmented into 2 fragments.", chop(0)),
		twoFrags("5.4", "Send text Message fragmented into 2 fragments, octets are sent in frame-wise chops.", synced),
		twoFrags("5.5", "Send text Message fragmented into 2 fragments, octets are sent in octet-wise chops.", chop(1)),
		pingBetween("5.6", "Send text Message fragmented into 2 fragments, one ping with payload in-between.", chop(0)),
		pingBetween("5.7", "Send text Message fragmented into 2 fragments, one ping with payload in-between. Octets are sent in frame-wise chops.", synced),
		pingBetween("5.8", "Send text Message fragmented into 2 fragments, one ping with payload in-between. Octets are sent in octet-wise chops.", chop(1)),
		nothingToContinue("5.9", "Send unfragmented Text Message after Continuation Frame with FIN = true, where there is nothing to continue, sent in one chop.", true, chop(0)),
		nothingToContinue("5.10", "Send unfragmented Text Message after Continuation Frame with FIN = true, where there is nothing to continue, sent in per-frame chops.", true, synced),
		nothingToContinue("5.11", "Send unfragmented Text Message after Continuation Frame with FIN = true, where there is nothing to continue, sent in octet-wise chops.", true, chop(1)),
		nothingToContinue("5.12", "Send unfragmented Text Message after Continuation Frame with FIN = false, where there is nothing to continue, sent in one chop.", false, chop(0)),
		nothingToContinue("5.13", "Send unfragmented Text Message after Continuation Frame with FIN = false, where there is nothing to continue, sent in per-frame chops.", false, synced),
		nothingToContinue("5.14", "Send unfragmented Text Message after Continuation Frame with FIN = false, where there is nothing to continue, sent in octet-wise chops.", false, chop(1)),
		newCase("5.15", "Send text Message fragmented into 2 fragments, then Continuation Frame with FIN = false where there is nothing to continue, then unfragmented Text Message, all sent in one chop.",
			noContExp, func(s *session) {
				s.expect(OK, message("fragment1fragment2", false))
				s.expect(NonStrict)
				s.expectFail(1002)
				s.sendFrame(1, "fragment1", noFin)
				s.sendFrame(0, "fragment2")
				s.sendFrame(0, "fragment3", noFin)
				s.sendFrame(1, "fragment4")
				s.killAfter(sec)
			}),
		repeated("5.16", "Repeated 2x: Continuation Frame with FIN = false (where there is nothing to continue), then text Message fragmented into 2 fragments.", false),
		repeated("5.17", "Repeated 2x: Continuation Frame with FIN = true (where there is nothing to continue), then text Message fragmented into 2 fragments.", true),
		newCase("5.18", "Send text Message fragmented into 2 fragments, with both frame opcodes set to text, sent in one chop.",
			"The connection is failed immediately, since all data frames after the initial data frame must have opcode 0.",
			func(s *session) {
				s.expect(OK)
				s.expectFail(1002)
				s.sendFrame(1, "fragment1", noFin)
				s.sendFrame(1, "fragment2")
				s.killAfter(sec)
			}),
		pingPong("5.19", "A fragmented text message is sent in multiple frames. After sending the first 2 frames of the text message, a Ping is sent. Then we wait 1s, then we send 2 more text fragments, another Ping and then the final text fragment. Everything is legal.",
			"The peer immediately answers the first Ping before it has received the last text message fragment. The peer pong's back the Ping's payload exactly, and echo's the payload of the fragmented message back to us.", false),
		pingPong("5.20", "Same as Case 5.19, but send all frames with SYNC = True. Note, this does not change the octets sent in any way, only how the stream is chopped up on the wire.",
			"Same as Case 5.19. Implementations must be agnostic to how octet stream is chopped up on wire (must be TCP clean).", true),
	}
}

// 7 Close Handling.
func closeCases() []Case {
	// closing is the shape of most 7.x cases: no events expected, a close
	// verdict of WRONG CODE fails the case.
	closing := func(id, desc, exp string, byMe bool, clean bool, codes []int, send func(s *session)) Case {
		return newCase(id, desc, exp, func(s *session) {
			s.suppressClose = true
			s.wrongCodeFails()
			s.expect(OK)
			s.close = closeExpect{byMe: byMe, codes: codes, requireClean: clean}
			send(s)
			s.killAfter(sec)
		})
	}
	normal := []int{1000}
	cs := []Case{
		newCase("7.1.1", "Send a message followed by a close frame", "Echoed message followed by clean close with normal code.", func(s *session) {
			s.wrongCodeFails()
			s.expect(OK, message("Hello World!", false))
			s.expectNormalClose()
			s.sendFrame(1, "Hello World!")
			s.killAfter(sec)
		}),
		closing("7.1.2", "Send two close frames", "Clean close with normal code. Second close frame ignored.", true, true, normal, func(s *session) {
			s.sendClose(1000, "")
			s.sendFrame(8, "")
		}),
		closing("7.1.3", "Send a ping after close message", "Clean close with normal code, no pong.", true, true, normal, func(s *session) {
			s.sendClose(1000, "")
			s.sendFrame(9, "")
		}),
		closing("7.1.4", "Send text message after sending a close frame.", "Clean close with normal code. Text message ignored.", true, true, normal, func(s *session) {
			s.sendClose(1000, "")
			s.sendFrame(1, "Hello World!")
		}),
		closing("7.1.5", "Send message fragment1 followed by close then fragment", "Clean close with normal code.", true, true, normal, func(s *session) {
			s.sendFrame(1, "fragment1", noFin)
			s.sendClose(1000, "")
			s.sendFrame(0, "fragment2")
		}),
		newCase("7.1.6", "Send 256K message followed by close then a ping",
			"Case outcome depends on implementation defined close behavior. Message and close frame are sent back to back. If the close frame is processed before the text message write is complete (as can happen in asynchronous processing models) the close frame is processed first and the text message may not be received or may only be partially recieved.",
			func(s *session) {
				s.suppressClose = true
				s.expect(OK, message("Hello World!", false))
				s.expect(NonStrict)
				s.expectNormalClose()
				s.onLost = func() {
					switch s.behavior {
					case OK:
						s.result = "Text message was processed before close."
					case NonStrict:
						s.result = "Close was processed before text message could be returned."
					}
					s.behavior, s.behaviorClose = Informational, Informational
				}
				s.sendFrame(1, "BAsd7&jh23", repeatTo(256<<10))
				s.sendFrame(1, "Hello World!")
				s.sendClose(1000, "")
				s.sendFrame(9, "")
				s.killAfter(sec)
			}),
		closing("7.3.1", "Send a close frame with payload length 0 (no close code, no close reason)", "Clean close with normal code.", true, true, normal, func(s *session) {
			s.sendCloseFrame(-1, nil, false)
		}),
		closing("7.3.2", "Send a close frame with payload length 1", "Clean close with protocol error or drop TCP.", true, false, []int{1002}, func(s *session) {
			s.sendCloseFrame(-1, []byte("a"), false)
		}),
		closing("7.3.3", "Send a close frame with payload length 2 (regular close with a code)", "Clean close with normal code.", true, true, normal, func(s *session) {
			s.sendClose(1000, "")
		}),
		closing("7.3.4", "Send a close frame with close code and close reason", "Clean close with normal code.", true, true, normal, func(s *session) {
			s.sendClose(1000, "Hello World!")
		}),
		closing("7.3.5", "Send a close frame with close code and close reason of maximum length (123)", "Clean close with normal code.", true, true, normal, func(s *session) {
			s.sendClose(1000, strings.Repeat("*", 123))
		}),
		closing("7.3.6", "Send a close frame with close code and close reason which is too long (124) - total frame payload 126 octets", "Clean close with protocol error code or dropped TCP connection.", true, false, []int{1002}, func(s *session) {
			s.sendCloseFrame(1000, []byte(strings.Repeat("*", 124)), false)
		}),
		closing("7.5.1", "Send a close frame with invalid UTF8 payload", "Clean close with protocol error or invalid utf8 code or dropped TCP.", true, false, []int{1002, 1007}, func(s *session) {
			s.sendCloseFrame(1000, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"), false)
		}),
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, closing(fmt.Sprintf("7.7.%d", i+1), fmt.Sprintf("Send close with valid close code %d", code),
			"Clean close with normal or echoed code", true, true, []int{1000, code}, func(s *session) {
				s.sendCloseFrame(code, nil, false)
			}))
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, closing(fmt.Sprintf("7.9.%d", i+1), fmt.Sprintf("Send close with invalid close code %d", code),
			"Clean close with protocol error code or drop TCP", true, false, []int{1002}, func(s *session) {
				s.sendCloseFrame(code, nil, false)
			}))
	}
	for i, code := range []int{5000, 65535} {
		desc := fmt.Sprintf("Send close with close code %d", code)
		if code == 65535 {
			desc = "Send close with close code 65536" // sic: Autobahn sends 65535
		}
		cs = append(cs, newCase(fmt.Sprintf("7.13.%d", i+1), desc, "Actual events are undefined by the spec.", func(s *session) {
			s.suppressClose = true
			s.expect(OK)
			s.close = closeExpect{byMe: true, codes: []int{1000, code, 1002}}
			s.onLost = func() {
				s.behavior, s.behaviorClose = Informational, Informational
				s.result = "Actual events are undefined by the spec."
			}
			s.sendCloseFrame(code, nil, false)
			s.killAfter(sec)
		}))
	}
	return cs
}

// 10 Misc.
func autoFragmentCases() []Case {
	return []Case{newCase("10.1.1", "Send text message with payload of length 65536 auto-fragmented with autoFragmentSize = 1300.",
		"Receive echo'ed text message (with payload as sent and transmitted frame counts as expected). Clean close with normal code.",
		func(s *session) {
			p := strings.Repeat("*", 65536)
			s.autoFragment = 1300
			s.expect(OK, message(p, false))
			s.expectNormalClose()
			s.sendMessage(p, false, 0)
			s.killAfter(10 * sec)
			s.onLost = func() {
				// Autobahn's own check of what it sent: 1 text frame, 50 continuations.
				if s.txFrames[0] != len(p)/1300 || s.txFrames[1] != 1 {
					s.behavior = Failed
					s.result = fmt.Sprintf("Frames transmitted %v does not match what we expected.", s.txFrames)
				}
			}
		})}
}
