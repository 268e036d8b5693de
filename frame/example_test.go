package frame_test

import (
	"fmt"

	"github.com/wskit/wskit/frame"
)

func ExampleParseHeader() {
	wire := frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 300})
	for _, b := range [][]byte{wire[:3], wire, {0x89, 0xFE}} {
		h, n, err := frame.ParseHeader(b)
		switch {
		case err != nil:
			fmt.Println("error:", err)
		case n == 0:
			fmt.Println("need more bytes")
		default:
			fmt.Println(h.Op, h.Length, "bytes of payload after", n, "header bytes")
		}
	}
	// Output:
	// need more bytes
	// text 300 bytes of payload after 8 header bytes
	// error: wskit: ping frame payload longer than 125 bytes (1002 protocol error)
}

func ExampleMask() {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	payload := []byte("Hello")
	// Mask in two chunks: the returned position carries the key's phase.
	pos := frame.Mask(payload[:2], key, 0)
	frame.Mask(payload[2:], key, pos)
	fmt.Printf("% x\n", payload) // RFC 6455 §5.7's masked "Hello"
	// Output:
	// 7f 9f 4d 51 58
}

func ExampleUTF8Validator() {
	var v frame.UTF8Validator
	fmt.Println(v.Write([]byte("caf\xc3")), v.Complete()) // "é" cut after its first byte
	fmt.Println(v.Write([]byte("\xa9")), v.Complete())
	v.Reset()
	fmt.Println(v.Write([]byte("\xed\xa0"))) // a UTF-16 surrogate: impossible already
	// Output:
	// true false
	// true true
	// false
}

func ExampleParseClose() {
	payload, _ := frame.AppendClose(nil, frame.CloseGoingAway, "restarting")
	code, reason, err := frame.ParseClose(payload)
	fmt.Println(code, string(reason), err)
	_, _, err = frame.ParseClose([]byte{0x03, 0xee}) // 1006 may not be sent
	fmt.Println(err)
	// Output:
	// 1001 going away restarting <nil>
	// wskit: close frame carries code 1006, which may not be sent (1002 protocol error)
}
