package frame

import "fmt"

// ProtocolError is a violation of RFC 6455 (or of a configured limit) found in
// what the peer sent. Code is the close code to answer with; Reason says what
// was wrong in words short enough to go into that close frame.
type ProtocolError struct {
	Code   CloseCode      // the close code to answer with
	Reason string         // what was wrong, short enough for a close frame
	kind   *ProtocolError // the sentinel this error details, for errors.Is
}

// Is reports whether e details target, so that errors.Is(err, ErrCloseCode)
// holds for an error that also names the offending code.
func (e *ProtocolError) Is(target error) bool { return e.kind != nil && e.kind == target }

// detail returns e with a reason that names the offending values. It
// allocates, which only rejecting bad input pays.
func (e *ProtocolError) detail(format string, args ...any) *ProtocolError {
	d := Errorf(e.Code, format, args...)
	d.kind = e
	return d
}

// Error returns the reason and the close code.
func (e *ProtocolError) Error() string {
	return "wskit: " + e.Reason + " (" + e.Code.String() + ")"
}

// Errorf returns a *ProtocolError with the given close code and a formatted reason.
// Reasons longer than MaxCloseReason bytes are cut so they fit a close frame.
func Errorf(code CloseCode, format string, args ...any) *ProtocolError {
	r := fmt.Sprintf(format, args...)
	if len(r) > MaxCloseReason {
		r = r[:MaxCloseReason]
		for len(r) > 0 && !ValidUTF8([]byte(r)) {
			r = r[:len(r)-1]
		}
	}
	return &ProtocolError{Code: code, Reason: r}
}

// Violations found while parsing headers and close payloads. Match them with
// errors.Is: the errors returned may be detailed copies that name the value
// at fault.
var (
	ErrReservedOpcode    = &ProtocolError{Code: CloseProtocolError, Reason: "frame uses a reserved opcode"}
	ErrFragmentedControl = &ProtocolError{Code: CloseProtocolError, Reason: "control frame is fragmented (FIN not set)"}
	ErrControlTooLong    = &ProtocolError{Code: CloseProtocolError, Reason: "control frame payload longer than 125 bytes"}
	ErrLengthOverflow    = &ProtocolError{Code: CloseProtocolError, Reason: "64-bit payload length has its most significant bit set"}
	ErrCloseTooShort     = &ProtocolError{Code: CloseProtocolError, Reason: "close payload of 1 byte (a code needs 2)"}
	ErrCloseCode         = &ProtocolError{Code: CloseProtocolError, Reason: "close frame carries a code that may not be sent"}
	ErrCloseReasonUTF8   = &ProtocolError{Code: CloseInvalidPayload, Reason: "close reason is not valid UTF-8"}
)
