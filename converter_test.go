package wskit_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/wskit/wskit"
)

type point struct {
	X, Y  float64
	Label string `json:"label"`
}

// valueEcho decodes each message as a point and sends it back moved by one.
func valueEcho(decodeErrs chan<- error) func(*wskit.Session) {
	return func(s *wskit.Session) {
		for {
			p, err := wskit.ReceiveValue[point](context.Background(), s)
			var de *wskit.DecodeError
			if errors.As(err, &de) {
				decodeErrs <- err
				continue
			}
			if err != nil {
				return
			}
			p.X++
			p.Y++
			if err := wskit.SendValue(s, p); err != nil {
				return
			}
		}
	}
}

func TestJSONValues(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	decodeErrs := make(chan error, 1)
	url := serve(t, srv.WebSocket(valueEcho(decodeErrs)))
	c := dial(t, url, nil)
	ctx := context.Background()

	if err := wskit.SendValue(c, point{1, 2, "a"}); err != nil {
		t.Fatalf("SendValue: %v", err)
	}
	m := receive(t, c)
	if m.Type != wskit.Text || m.Text() != `{"X":2,"Y":3,"label":"a"}` {
		t.Fatalf("JSON on the wire: %v %s", m.Type, m.Payload)
	}
	wskit.SendValue(c, point{-1, 0.5, "b"})
	got, err := wskit.ReceiveValue[point](ctx, c)
	if err != nil || got != (point{0, 1.5, "b"}) {
		t.Fatalf("ReceiveValue = %+v, %v", got, err)
	}

	// A message that is not JSON: a *DecodeError on the server, which goes on.
	c.SendText("not json {")
	err = await(t, decodeErrs, "the server's decode error")
	var de *wskit.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T), want a *DecodeError", err, err)
	}
	if de.Type != reflect.TypeFor[point]() || de.Message.Text() != "not json {" || de.Err == nil {
		t.Errorf("DecodeError{Type: %v, Message: %q, Err: %v}", de.Type, de.Message.Payload, de.Err)
	}
	wskit.SendValue(c, point{10, 10, "after"})
	if got, err := wskit.ReceiveValue[point](ctx, c); err != nil || got.Label != "after" {
		t.Fatalf("after a decode error: %+v, %v", got, err)
	}

	// Valid JSON of the wrong shape is a decode error too.
	c.SendText(`"a string"`)
	await(t, decodeErrs, "the server's decode error")
	wskit.SendValue(c, []int{1, 2}) // an array is not a point either
	await(t, decodeErrs, "the server's decode error")
	if _, ok := c.CloseReason(); ok {
		t.Fatal("the session ended on a decode error")
	}

	// A value the converter cannot encode.
	if err := wskit.SendValue(c, math.Inf(1)); err == nil {
		t.Error("SendValue(+Inf) succeeded, want a JSON error")
	}
	if err := wskit.SendValue(c, make(chan int)); err == nil {
		t.Error("SendValue(chan) succeeded")
	}
}

// A DecodeError on the client: the message is kept (copied) and the session
// stays open.
func TestDecodeErrorOnClient(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	url := serve(t, srv.WebSocket(echoHandler(nil)))
	c := dial(t, url, nil)
	c.SendBinary([]byte{0xff, 0x00})
	_, err := wskit.ReceiveValue[map[string]int](context.Background(), c)
	var de *wskit.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("ReceiveValue = %v, want a *DecodeError", err)
	}
	if de.Type != reflect.TypeFor[map[string]int]() || de.Message.Type != wskit.Binary || string(de.Message.Payload) != "\xff\x00" {
		t.Errorf("DecodeError = %+v", de)
	}
	if de.Unwrap() == nil || de.Error() == "" {
		t.Error("DecodeError lacks its cause")
	}
	c.SendText(`{"n": 1}`)
	got, err := wskit.ReceiveValue[map[string]int](context.Background(), c)
	if err != nil || got["n"] != 1 {
		t.Fatalf("after a decode error: %v, %v", got, err)
	}
	// ReceiveValue after the end reports the close.
	c.Close(wskit.CloseNormal, "")
	if _, err := wskit.ReceiveValue[int](context.Background(), c); !errors.As(err, new(*wskit.CloseError)) {
		t.Errorf("ReceiveValue after Close = %v, want a *CloseError", err)
	}
}

// pointCodec is a custom Converter: points as 16 bytes of binary.
type pointCodec struct{}

func (pointCodec) Marshal(v any) (wskit.MessageType, []byte, error) {
	p, ok := v.(point)
	if !ok {
		return 0, nil, fmt.Errorf("pointCodec: cannot encode %T", v)
	}
	b := binary.BigEndian.AppendUint64(nil, math.Float64bits(p.X))
	return wskit.Binary, binary.BigEndian.AppendUint64(b, math.Float64bits(p.Y)), nil
}

func (pointCodec) Unmarshal(t wskit.MessageType, data []byte, v any) error {
	p, ok := v.(*point)
	if !ok {
		return fmt.Errorf("pointCodec: cannot decode into %T", v)
	}
	if t != wskit.Binary || len(data) != 16 {
		return fmt.Errorf("pointCodec: want 16 bytes of binary, got %d bytes of %v", len(data), t)
	}
	p.X = math.Float64frombits(binary.BigEndian.Uint64(data))
	p.Y = math.Float64frombits(binary.BigEndian.Uint64(data[8:]))
	return nil
}

func TestCustomConverter(t *testing.T) {
	checkGoroutines(t)
	opts := testOptions()
	opts.Converter = pointCodec{}
	srv := newServer(t, opts)
	decodeErrs := make(chan error, 1)
	url := serve(t, srv.WebSocket(valueEcho(decodeErrs)))

	raw := dial(t, url, nil) // JSON client, to look at the wire
	want := binary.BigEndian.AppendUint64(nil, math.Float64bits(1))
	want = binary.BigEndian.AppendUint64(want, math.Float64bits(1))
	raw.SendBinary(make([]byte, 16)) // the point (0, 0)
	if m := receive(t, raw); m.Type != wskit.Binary || string(m.Payload) != string(want) {
		t.Fatalf("custom encoding on the wire: %v %x, want binary %x", m.Type, m.Payload, want)
	}
	raw.SendText(`{"X":1}`)
	var de *wskit.DecodeError
	if err := await(t, decodeErrs, "the decode error"); !errors.As(err, &de) {
		t.Fatalf("got %v, want a *DecodeError from the custom converter", err)
	}

	c := dial(t, url, &wskit.DialOptions{Options: opts})
	if err := wskit.SendValue(c, point{X: 1.5, Y: -2}); err != nil {
		t.Fatal(err)
	}
	got, err := wskit.ReceiveValue[point](context.Background(), c)
	if err != nil || got != (point{X: 2.5, Y: -1}) {
		t.Fatalf("ReceiveValue = %+v, %v", got, err)
	}
	if err := wskit.SendValue(c, "not a point"); err == nil {
		t.Error("SendValue of a value the converter refuses succeeded")
	}
}
