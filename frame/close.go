package frame

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// CloseCode is the status code of a close frame (RFC 6455 §7.4).
type CloseCode uint16

// Close codes of RFC 6455 §7.4.1 and the IANA WebSocket Close Code Number
// Registry. Codes 1004, 1005, 1006 and 1015 are reserved for reporting and
// never appear in a close frame.
const (
	CloseNormal             CloseCode = 1000
	CloseGoingAway          CloseCode = 1001
	CloseProtocolError      CloseCode = 1002
	CloseUnsupportedData    CloseCode = 1003
	CloseReserved           CloseCode = 1004
	CloseNoStatus           CloseCode = 1005 // the close frame carried no code
	CloseAbnormal           CloseCode = 1006 // the connection ended without a close frame
	CloseInvalidPayload     CloseCode = 1007 // e.g. text that is not UTF-8
	ClosePolicyViolation    CloseCode = 1008
	CloseMessageTooBig      CloseCode = 1009
	CloseMandatoryExtension CloseCode = 1010
	CloseInternalError      CloseCode = 1011
	CloseServiceRestart     CloseCode = 1012
	CloseTryAgainLater      CloseCode = 1013
	CloseBadGateway         CloseCode = 1014
	CloseTLSHandshake       CloseCode = 1015
	CloseUnauthorized       CloseCode = 3000
	CloseForbidden          CloseCode = 3003
	CloseTimeout            CloseCode = 3008
)

// CloseReason is why a connection closed: the code and reason of a close
// frame, or the code reporting how it ended without one (Ktor's CloseReason).
type CloseReason struct {
	// Code is the close code: the one sent or received, or CloseAbnormal
	// when the connection ended without a close frame.
	Code CloseCode
	// Reason is the close frame's reason text, "" when it carried none.
	Reason string
}

// String returns the code's number and name, then the reason if any, as in
// "1000 normal closure: bye".
func (r CloseReason) String() string {
	if r.Reason == "" {
		return r.Code.String()
	}
	return r.Code.String() + ": " + r.Reason
}

// MaxCloseReason is the longest reason that fits a close frame beside its code.
const MaxCloseReason = MaxControlPayload - 2

// ValidOnWire reports whether c may be sent in a close frame: 1000–1003,
// 1007–1014, and 3000–4999 (registered and private codes). 1004–1006, 1015,
// codes under 1000, 1016–2999 and 5000 and above may not.
func (c CloseCode) ValidOnWire() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

var closeNames = map[CloseCode]string{
	CloseNormal:             "normal closure",
	CloseGoingAway:          "going away",
	CloseProtocolError:      "protocol error",
	CloseUnsupportedData:    "unsupported data",
	CloseReserved:           "reserved",
	CloseNoStatus:           "no status received",
	CloseAbnormal:           "abnormal closure",
	CloseInvalidPayload:     "invalid frame payload data",
	ClosePolicyViolation:    "policy violation",
	CloseMessageTooBig:      "message too big",
	CloseMandatoryExtension: "mandatory extension",
	CloseInternalError:      "internal error",
	CloseServiceRestart:     "service restart",
	CloseTryAgainLater:      "try again later",
	CloseBadGateway:         "bad gateway",
	CloseTLSHandshake:       "TLS handshake",
	CloseUnauthorized:       "unauthorized",
	CloseForbidden:          "forbidden",
	CloseTimeout:            "timeout",
}

// String returns the code and its registered name, such as "1000 normal closure".
func (c CloseCode) String() string {
	s := strconv.Itoa(int(c))
	if name, ok := closeNames[c]; ok {
		return s + " " + name
	}
	if c >= 4000 && c <= 4999 {
		return s + " private"
	}
	return s
}

// ParseClose splits a close frame's payload into its code and reason. An
// empty payload yields CloseNoStatus. A 1-byte payload or a code that may not
// be sent is a protocol error (1002); a reason that is not UTF-8 is 1007.
// The reason points into p.
func ParseClose(p []byte) (code CloseCode, reason []byte, err error) {
	switch len(p) {
	case 0:
		return CloseNoStatus, nil, nil
	case 1:
		return 0, nil, ErrCloseTooShort
	}
	code = CloseCode(binary.BigEndian.Uint16(p))
	if !code.ValidOnWire() {
		return code, nil, ErrCloseCode.detail("close frame carries code %d, which may not be sent", uint16(code))
	}
	reason = p[2:]
	if !ValidUTF8(reason) {
		return code, nil, ErrCloseReasonUTF8
	}
	return code, reason, nil
}

// Errors of AppendClose: the caller asked for a close frame RFC 6455 forbids.
var (
	ErrCloseCodeNotSendable = errors.New("wskit: close code may not be sent in a close frame")
	ErrCloseReasonTooLong   = errors.New("wskit: close reason longer than 123 bytes")
	ErrCloseReasonInvalid   = errors.New("wskit: close reason is not valid UTF-8")
)

// AppendClose appends a close payload (not a frame header) to dst. Code
// CloseNoStatus with an empty reason appends nothing: a close frame may carry
// no payload at all. Otherwise the code must be ValidOnWire and the reason
// UTF-8 of at most MaxCloseReason bytes.
func AppendClose(dst []byte, code CloseCode, reason string) ([]byte, error) {
	if code == CloseNoStatus && reason == "" {
		return dst, nil
	}
	if !code.ValidOnWire() {
		return dst, ErrCloseCodeNotSendable
	}
	if len(reason) > MaxCloseReason {
		return dst, ErrCloseReasonTooLong
	}
	if !ValidUTF8([]byte(reason)) {
		return dst, ErrCloseReasonInvalid
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...), nil
}
