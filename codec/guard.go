package codec

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/wskit/wskit/frame"
)

// PanicError is a panic recovered from a function the application supplied
// (an extension here; hooks, callbacks and converters in package wskit),
// turned into an error so that it fails one connection and nothing else.
// A connection it ends is closed with 1011 Internal Error.
type PanicError struct {
	Func  string // what panicked, such as "extension permessage-deflate: Decode"
	Value any    // the value given to panic
	Stack []byte // the stack of the goroutine that panicked, where it did
}

// Error names what panicked and the value it panicked with.
func (e *PanicError) Error() string {
	return fmt.Sprintf("wskit: %s panicked: %v", e.Func, e.Value)
}

// Recovered returns a *PanicError for v, the result of recover() in a
// deferred call, or nil when v is nil. Call it from the deferred function
// itself so that the stack shows where the panic happened.
func Recovered(v any, fn string) *PanicError {
	if v == nil {
		return nil
	}
	return &PanicError{Func: fn, Value: v, Stack: debug.Stack()}
}

// CloseFor returns the close code and reason that report err to the peer
// when err fails a connection: a violation's own, 1011 for a panic, and ok
// false for anything else (a transport error, a timeout of ours).
func CloseFor(err error) (code frame.CloseCode, reason string, ok bool) {
	var pe *frame.ProtocolError
	var pan *PanicError
	switch {
	case errors.As(err, &pe):
		return pe.Code, pe.Reason, true
	case errors.As(err, &pan):
		return frame.CloseInternalError, "internal error", true
	}
	return 0, "", false
}

// The calls below run an extension's methods with their panics recovered.
// Each is a function of its own so that its defer stays open-coded (a defer
// in a loop would allocate).

func extensionName(e Extension) (name string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension: Name")
		}
	}()
	return e.Name(), nil
}

func acceptOne(e Extension, name string, offers []ExtensionOffer) (resp ExtensionOffer, t Transform, ok bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension "+name+": Accept")
		}
	}()
	resp, t, ok = e.Accept(offers)
	return resp, t, ok, nil
}

func offerOne(e Extension) (offers []ExtensionOffer, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension: Offer")
		}
	}()
	return e.Offer(), nil
}

func confirmOne(e Extension, name string, r ExtensionOffer) (t Transform, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension "+name+": Confirm")
		}
	}()
	return e.Confirm(r)
}

func encodeOne(n *Negotiated, buf *[]byte, op frame.Opcode, p []byte) (out []byte, rsv byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension "+n.Name+": Encode")
		}
	}()
	return n.Transform.Encode(buf, op, p)
}

func decodeOne(n *Negotiated, buf *[]byte, op frame.Opcode, rsv byte, p []byte, limit int64) (out []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension "+n.Name+": Decode")
		}
	}()
	return n.Transform.Decode(buf, op, rsv, p, limit)
}

func releaseOne(n *Negotiated) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension "+n.Name+": Release")
		}
	}()
	n.Transform.Release()
	return nil
}

func encodeSharedOne(st SharedTransform, buf *[]byte, op frame.Opcode, p []byte) (out []byte, rsv byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension: EncodeShared")
		}
	}()
	return st.EncodeShared(buf, op, p)
}

func shareKeyOne(st SharedTransform) (key any, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension: ShareKey")
		}
	}()
	return st.ShareKey(), nil
}

func sentSharedOne(n *Negotiated, st SharedTransform, rsv byte) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Recovered(v, "extension "+n.Name+": SentShared")
		}
	}()
	st.SentShared(rsv)
	return nil
}
