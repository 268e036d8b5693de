package wskit

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/wskit/wskit/codec"
)

// Converter turns values into message payloads and back (Ktor's
// contentConverter). Implementations must be safe for concurrent use.
type Converter interface {
	// Marshal encodes v as the payload of one message of the type returned.
	Marshal(v any) (MessageType, []byte, error)
	// Unmarshal decodes a payload into v, a pointer.
	Unmarshal(t MessageType, data []byte, v any) error
}

// JSON is the default Converter: values travel as JSON text messages.
type JSON struct{}

// Marshal encodes v with encoding/json.
func (JSON) Marshal(v any) (MessageType, []byte, error) {
	b, err := json.Marshal(v)
	return Text, b, err
}

// Unmarshal decodes JSON from a text or binary message.
func (JSON) Unmarshal(_ MessageType, data []byte, v any) error { return json.Unmarshal(data, v) }

// DecodeError is returned by ReceiveValue for a message that does not decode
// into the requested type. The session stays open.
type DecodeError struct {
	Type    reflect.Type // the type asked for
	Message Message      // the message, with a copy of its payload
	Err     error        // the converter's error
}

// Error names the message's type and size, the type asked for, and the
// converter's error.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("wskit: %s message of %d bytes does not decode into %v: %v", e.Message.Type, len(e.Message.Payload), e.Type, e.Err)
}

// Unwrap returns the converter's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// SendValue encodes v with the session's Converter and sends it (Ktor's
// sendSerialized).
func SendValue(s *Session, v any) error {
	t, p, err := marshal(s.opts.Converter, v)
	if err != nil {
		return err
	}
	return s.Send(t, p)
}

// marshal encodes v with conv; a panic in conv is returned as a
// *codec.PanicError.
func marshal(conv Converter, v any) (t MessageType, p []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("wskit: encoding %T: %w", v, codec.Recovered(r, "Converter.Marshal"))
		}
	}()
	t, p, err = conv.Marshal(v)
	if err != nil {
		return 0, nil, fmt.Errorf("wskit: encoding %T: %w", v, err)
	}
	return t, p, nil
}

// unmarshal decodes data into v with conv; a panic in conv is returned as
// a *codec.PanicError.
func unmarshal(conv Converter, t MessageType, data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = codec.Recovered(r, "Converter.Unmarshal")
		}
	}()
	return conv.Unmarshal(t, data, v)
}

// ReceiveValue receives the next message and decodes it into a T with the
// session's Converter (Ktor's receiveDeserialized). A message that does not
// decode returns a *DecodeError.
func ReceiveValue[T any](ctx context.Context, s *Session) (T, error) {
	var v T
	m, err := s.Receive(ctx)
	if err != nil {
		return v, err
	}
	if err := unmarshal(s.opts.Converter, m.Type, m.Payload, &v); err != nil {
		return v, &DecodeError{Type: reflect.TypeFor[T](), Message: m.Clone(), Err: err}
	}
	return v, nil
}
