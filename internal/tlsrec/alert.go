package tlsrec

import (
	"crypto/tls"
	"strconv"
)

// Alert is a TLS alert description (RFC 8446 §6).
type Alert uint8

// The alerts the record layer sends or acts on. Others arrive by number
// and are named by String.
const (
	AlertCloseNotify       Alert = 0
	AlertUnexpectedMessage Alert = 10
	AlertBadRecordMAC      Alert = 20
	AlertRecordOverflow    Alert = 22
	AlertIllegalParameter  Alert = 47
	AlertDecodeError       Alert = 50
	AlertProtocolVersion   Alert = 70
	AlertInternalError     Alert = 80
	AlertUserCanceled      Alert = 90
)

var alertNames = map[Alert]string{
	0:   "close_notify",
	10:  "unexpected_message",
	20:  "bad_record_mac",
	21:  "decryption_failed",
	22:  "record_overflow",
	40:  "handshake_failure",
	42:  "bad_certificate",
	43:  "unsupported_certificate",
	44:  "certificate_revoked",
	45:  "certificate_expired",
	46:  "certificate_unknown",
	47:  "illegal_parameter",
	48:  "unknown_ca",
	49:  "access_denied",
	50:  "decode_error",
	51:  "decrypt_error",
	70:  "protocol_version",
	71:  "insufficient_security",
	80:  "internal_error",
	86:  "inappropriate_fallback",
	90:  "user_canceled",
	100: "no_renegotiation",
	109: "missing_extension",
	110: "unsupported_extension",
	112: "unrecognized_name",
	113: "bad_certificate_status_response",
	115: "unknown_psk_identity",
	116: "certificate_required",
	120: "no_application_protocol",
	121: "ech_required",
}

// String returns the alert's name as RFC 8446 spells it, or its number.
func (a Alert) String() string {
	if s, ok := alertNames[a]; ok {
		return s
	}
	return "alert(" + strconv.Itoa(int(a)) + ")"
}

// AlertError is a fatal TLS alert that ended the connection: one the peer
// sent (Remote), or one the record layer raised on the peer's input, which
// AppendReplies then sends.
type AlertError struct {
	Alert  Alert
	Remote bool
	Reason string // what was wrong with the input, when local
}

func (e *AlertError) Error() string {
	if e.Remote {
		return "tls: peer sent alert " + e.Alert.String()
	}
	if e.Reason == "" {
		return "tls: " + e.Alert.String()
	}
	return "tls: " + e.Alert.String() + ": " + e.Reason
}

// Unwrap returns the alert as crypto/tls's AlertError, so that errors.As
// finds it as it would in an error from a tls.Conn.
func (e *AlertError) Unwrap() error { return tls.AlertError(e.Alert) }

// level is the legacy level byte sent with a: close_notify and
// user_canceled go as warnings (RFC 8446 §6), every other alert as fatal.
func (a Alert) level() byte {
	if a == AlertCloseNotify || a == AlertUserCanceled {
		return 1
	}
	return 2
}
