package codec_test

import (
	"fmt"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// A server-side echo, with the client's bytes made by a client-role Encoder.
func ExampleProtocol() {
	client := codec.Encoder{Role: codec.Client}
	in := client.AppendMessage(nil, frame.OpText, 0, []byte("hello"))
	in = client.AppendFrame(in, frame.Header{Fin: true, Op: frame.OpPing}, []byte("p"))
	in = client.AppendFrame(in, frame.Header{Fin: true, Op: frame.OpClose}, []byte{0x03, 0xe8})

	server := codec.NewProtocol(codec.Config{Role: codec.Server})
	var out []byte
	for len(in) > 0 {
		ev, n, ok, err := server.Receive(in)
		in = in[n:]
		if err != nil {
			fmt.Println("error:", err)
			break
		}
		if !ok {
			continue
		}
		switch ev.Kind {
		case codec.EventMessage:
			fmt.Printf("message %v %q\n", ev.Op, ev.Payload)
			out, _ = server.AppendMessage(out, ev.Op, 0, ev.Payload)
		case codec.EventPing:
			fmt.Printf("ping %q\n", ev.Payload)
		case codec.EventClose:
			fmt.Println("close", ev.Code)
		}
	}
	out = server.AppendReplies(out)
	fmt.Printf("state %v, %d bytes to write: % x\n", server.State(), len(out), out)
	// Output:
	// message text "hello"
	// ping "p"
	// close 1000 normal closure
	// state closed, 14 bytes to write: 81 05 68 65 6c 6c 6f 8a 01 70 88 02 03 e8
}

// Frames arrive in pieces of any size; a whole frame comes back pointing into
// the input.
func ExampleDecoder() {
	client := codec.Encoder{Role: codec.Client}
	stream := client.AppendMessage(nil, frame.OpBinary, 0, []byte{1, 2, 3})
	var d codec.Decoder
	for i := range stream {
		f, _, ok, err := d.Next(stream[i : i+1]) // one byte at a time
		if err != nil {
			fmt.Println(err)
			return
		}
		if ok {
			fmt.Println(f.Op, f.Fin, f.Payload)
		}
	}
	// Output:
	// binary true [1 2 3]
}
