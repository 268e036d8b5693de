package codec_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// crc32Extension is "x-crc32", a custom extension: it claims RSV2, appends
// the CRC-32 (IEEE) of each outgoing data message and checks and strips it
// on receipt.
type crc32Extension struct{}

func (crc32Extension) Name() string { return "x-crc32" }
func (crc32Extension) Rsv() byte    { return frame.RSV2 }

func (crc32Extension) Offer() []codec.ExtensionOffer {
	return []codec.ExtensionOffer{{Name: "x-crc32"}}
}

// Accept takes the first alternative without parameters: it knows none.
func (crc32Extension) Accept(offers []codec.ExtensionOffer) (codec.ExtensionOffer, codec.Transform, bool) {
	for _, o := range offers {
		if len(o.Params) == 0 {
			return codec.ExtensionOffer{Name: "x-crc32"}, crc32Transform{}, true
		}
	}
	return codec.ExtensionOffer{}, nil, false
}

func (crc32Extension) Confirm(r codec.ExtensionOffer) (codec.Transform, error) {
	if len(r.Params) != 0 {
		return nil, fmt.Errorf("x-crc32: unknown parameters in %q", r)
	}
	return crc32Transform{}, nil
}

// errChecksum fails the connection with 1007: the data does not match.
var errChecksum = &frame.ProtocolError{Code: frame.CloseInvalidPayload, Reason: "x-crc32: checksum mismatch"}

type crc32Transform struct{} // no state: nothing to release

func (crc32Transform) Encode(buf *[]byte, op frame.Opcode, p []byte) ([]byte, byte, error) {
	out := append(*buf, p...)
	out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(p))
	*buf = out
	return out, frame.RSV2, nil
}

func (crc32Transform) Decode(buf *[]byte, op frame.Opcode, rsv byte, p []byte, limit int64) ([]byte, error) {
	if len(p) < 4 {
		return nil, errChecksum
	}
	body := p[:len(p)-4]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(p[len(body):]) {
		return nil, errChecksum
	}
	*buf = append(*buf, body...)
	return *buf, nil
}

func (crc32Transform) Release() {}

// crc32Pair negotiates exts between a client and a server, through the
// header text, and returns their Protocols.
func crc32Pair(exts []codec.Extension) (server, client *codec.Protocol, offer, response string, err error) {
	if err := codec.CheckExtensions(exts); err != nil {
		return nil, nil, "", "", err
	}
	offered, err := codec.OfferExtensions(exts)
	if err != nil {
		return nil, nil, "", "", err
	}
	offer = string(codec.AppendExtensions(nil, offered))
	offers, err := codec.ParseExtensions(nil, []string{offer})
	if err != nil {
		return nil, nil, "", "", err
	}
	accepted, err := codec.AcceptExtensions(exts, offers)
	if err != nil {
		return nil, nil, "", "", err
	}
	response = string(codec.ResponseHeader(nil, accepted))
	parsed, err := codec.ParseExtensions(nil, []string{response})
	if err != nil {
		return nil, nil, "", "", err
	}
	confirmed, err := codec.ConfirmExtensions(exts, parsed)
	if err != nil {
		return nil, nil, "", "", err
	}
	server = codec.NewProtocol(codec.Config{Role: codec.Server, Extensions: accepted})
	client = codec.NewProtocol(codec.Config{Role: codec.Client, Extensions: confirmed})
	return server, client, offer, response, nil
}

// A custom extension, x-crc32, negotiated next to permessage-deflate and
// used in both directions.
func Example_customExtension() {
	exts := []codec.Extension{&codec.PerMessageDeflate{Threshold: 16}, crc32Extension{}}
	server, client, offer, response, err := crc32Pair(exts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer server.Release()
	defer client.Release()
	fmt.Println("offer:   ", offer)
	fmt.Println("response:", response)

	// Server to client: too short for deflate's threshold, so only x-crc32
	// works on it. Server frames are not masked, so the bytes show.
	wire, _ := server.AppendMessage(nil, frame.OpText, 0, []byte("hello"))
	fmt.Printf("wire:     % x\n", wire)
	ev, _, _, err := client.Receive(wire)
	fmt.Printf("client:   %q, RSV %#x, %v\n", ev.Payload, ev.Rsv, err)

	// Client to server: compressed, then checksummed.
	wire, _ = client.AppendMessage(nil, frame.OpText, 0, []byte("hello, hello, hello, hello, hello, hello, hello, hello, hello!"))
	ev, _, _, err = server.Receive(wire)
	fmt.Printf("server:   %q, RSV %#x, %v\n", ev.Payload, ev.Rsv, err)
	// Output:
	// offer:    permessage-deflate; client_max_window_bits, x-crc32
	// response: permessage-deflate; client_max_window_bits=13, x-crc32
	// wire:     a1 09 68 65 6c 6c 6f 36 10 a6 86
	// client:   "hello", RSV 0x20, <nil>
	// server:   "hello, hello, hello, hello, hello, hello, hello, hello, hello!", RSV 0x60, <nil>
}

func TestCRC32ExtensionRejectsCorruption(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(wire []byte) []byte // of a server frame of "hello" with its checksum
	}{
		{"payload byte flipped", func(w []byte) []byte { w[3] ^= 1; return w }},
		{"checksum byte flipped", func(w []byte) []byte { w[len(w)-1] ^= 0x80; return w }},
		{"checksum missing", func(w []byte) []byte { return []byte{w[0], 3, 'a', 'b', 'c'} }},
		{"empty", func(w []byte) []byte { return []byte{w[0], 0} }},
	}
	for _, tt := range tests {
		server, client, _, _, err := crc32Pair([]codec.Extension{crc32Extension{}})
		if err != nil {
			t.Fatal(err)
		}
		wire, _ := server.AppendMessage(nil, frame.OpText, 0, []byte("hello"))
		ev, _, ok, err := client.Receive(tt.corrupt(wire))
		if ok || !errors.Is(err, errChecksum) {
			t.Fatalf("%s: received %q, %v, %v; want %v", tt.name, ev.Payload, ok, err, errChecksum)
		}
		// The client owes the server a close frame with code 1007.
		closeFrame := client.AppendReplies(nil)
		if len(closeFrame) < 4 || closeFrame[0] != 0x88 {
			t.Fatalf("%s: replies % x, want a close frame", tt.name, closeFrame)
		}
		if code, _, _ := client.CloseReason(); code != frame.CloseInvalidPayload || client.State() != codec.StateClosed {
			t.Fatalf("%s: CloseReason %v, state %v", tt.name, code, client.State())
		}
		ev, _, _, err = server.Receive(closeFrame)
		if err != nil || ev.Kind != codec.EventClose || ev.Code != frame.CloseInvalidPayload {
			t.Fatalf("%s: the server read %+v, %v; want close 1007", tt.name, ev, err)
		}
		server.Release()
		client.Release()
	}
}
