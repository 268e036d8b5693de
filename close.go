package wskit

import "github.com/wskit/wskit/frame"

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

// CloseReason is why a session ended (Ktor's CloseReason).
type CloseReason struct {
	Code   CloseCode
	Reason string
}

func (r CloseReason) String() string {
	if r.Reason == "" {
		return r.Code.String()
	}
	return r.Code.String() + ": " + r.Reason
}

// CloseError is returned by Receive once the session has ended. Err is the
// error that ended it, nil after a completed close handshake.
type CloseError struct {
	CloseReason
	Err error
}

func (e *CloseError) Error() string { return "wskit: session closed: " + e.CloseReason.String() }

// Unwrap returns the error that ended the session.
func (e *CloseError) Unwrap() error { return e.Err }
