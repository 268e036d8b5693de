package wskit

import (
	"errors"

	"github.com/wskit/wskit/frame"
)

// CloseCode is a close status code (RFC 6455 §7.4).
type CloseCode = frame.CloseCode

// Close codes, as in Ktor's CloseReason.Codes.
const (
	CloseNormal             = frame.CloseNormal             // 1000
	CloseGoingAway          = frame.CloseGoingAway          // 1001
	CloseProtocolError      = frame.CloseProtocolError      // 1002
	CloseUnsupportedData    = frame.CloseUnsupportedData    // 1003
	CloseNoStatus           = frame.CloseNoStatus           // 1005, never sent
	CloseAbnormal           = frame.CloseAbnormal           // 1006, never sent
	CloseInvalidPayload     = frame.CloseInvalidPayload     // 1007
	ClosePolicyViolation    = frame.ClosePolicyViolation    // 1008
	CloseMessageTooBig      = frame.CloseMessageTooBig      // 1009
	CloseMandatoryExtension = frame.CloseMandatoryExtension // 1010
	CloseInternalError      = frame.CloseInternalError      // 1011
	CloseServiceRestart     = frame.CloseServiceRestart     // 1012
	CloseTryAgainLater      = frame.CloseTryAgainLater      // 1013
)

// CloseReason is why a session ended (Ktor's CloseReason): its Code and
// Reason. Package wsraw reports the same type.
type CloseReason = frame.CloseReason

// CloseError is the error of a session that has ended: Receive returns it
// once the messages that came before the end are taken, and sends return
// it afterwards. It matches ErrClosed with errors.Is. Err is the error that
// ended the session, nil after a completed close handshake.
type CloseError struct {
	CloseReason
	Err error // what ended the session; nil after a completed close handshake
}

// Error says that the session is closed, and why.
func (e *CloseError) Error() string { return "wskit: session closed: " + e.CloseReason.String() }

// Unwrap returns the error that ended the session.
func (e *CloseError) Unwrap() error { return e.Err }

// Is reports whether target is ErrClosed, so that every error of an ended
// session matches it.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

// CloseStatus returns the close code of the *CloseError in err's chain,
// such as CloseNormal after the peer closed with 1000, or 0 when err carries
// none (it is nil, a timeout of the caller's context, a send after our own
// close frame while the session is still ending).
func CloseStatus(err error) CloseCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}
