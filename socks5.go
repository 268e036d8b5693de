package wskit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
)

// A SOCKS5 client for Dial: the CONNECT command of RFC 1928, with no
// authentication or with a user name and password (RFC 1929). Every read
// is of a length the protocol fixes or announces in a byte, so a proxy can
// make it hold no more than a few hundred bytes.

// SOCKS5 constants (RFC 1928 §3–6, RFC 1929 §2).
const (
	socksVersion        = 5
	socksNoAuth         = 0x00
	socksPassword       = 0x02
	socksNoAcceptable   = 0xff
	socksConnectCommand = 1
	socksIPv4           = 1
	socksDomain         = 3
	socksIPv6           = 4
	socksPasswordVer    = 1
)

// socksReplies are the meanings of the reply codes of RFC 1928 §6.
var socksReplies = [...]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

// socksConnect asks the SOCKS5 proxy on nc to connect to addr (host:port).
// A host name is passed as it is, for the proxy to resolve. With user, the
// proxy may ask for its name and password.
func socksConnect(nc net.Conn, user *url.Userinfo, addr string) error {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return fmt.Errorf("SOCKS5: port %q: %w", portText, err)
	}
	var b [3 + 2*256]byte // the largest message: the password sub-negotiation

	// Methods: §3.
	greeting := append(b[:0], socksVersion, 1, socksNoAuth)
	if user != nil {
		greeting = append(b[:0], socksVersion, 2, socksNoAuth, socksPassword)
	}
	if _, err := nc.Write(greeting); err != nil {
		return err
	}
	if _, err := io.ReadFull(nc, b[:2]); err != nil {
		return socksReadError(err)
	}
	if b[0] != socksVersion {
		return fmt.Errorf("SOCKS5: the proxy answered with version %d", b[0])
	}
	switch method := b[1]; {
	case method == socksNoAuth:
	case method == socksPassword && user != nil:
		if err := socksSignIn(nc, user, b[:0]); err != nil {
			return err
		}
	case method == socksNoAcceptable && user == nil:
		return errors.New("SOCKS5: the proxy accepts no connection without authentication (give a user and password in the proxy URL)")
	case method == socksNoAcceptable:
		return errors.New("SOCKS5: the proxy accepts neither no authentication nor a user name and password")
	default:
		return fmt.Errorf("SOCKS5: the proxy chose authentication method %#x, which was not offered", method)
	}

	// Request: §4.
	req := append(b[:0], socksVersion, socksConnectCommand, 0)
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		if ip.Is4() || ip.Is4In6() {
			a := ip.Unmap().As4()
			req = append(append(req, socksIPv4), a[:]...)
		} else {
			a := ip.As16()
			req = append(append(req, socksIPv6), a[:]...)
		}
	} else {
		if len(host) == 0 || len(host) > 255 {
			return fmt.Errorf("SOCKS5: host name %q is empty or longer than 255 bytes", host)
		}
		req = append(append(req, socksDomain, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := nc.Write(req); err != nil {
		return err
	}

	// Reply: §6. The bound address that ends it is read and dropped.
	if _, err := io.ReadFull(nc, b[:4]); err != nil {
		return socksReadError(err)
	}
	if b[0] != socksVersion {
		return fmt.Errorf("SOCKS5: the proxy replied with version %d", b[0])
	}
	if code := b[1]; code != 0 {
		if int(code) < len(socksReplies) {
			return fmt.Errorf("SOCKS5: the proxy could not connect to %s: %s", addr, socksReplies[code])
		}
		return fmt.Errorf("SOCKS5: the proxy could not connect to %s: reply code %#x", addr, code)
	}
	var n int
	switch b[3] {
	case socksIPv4:
		n = 4
	case socksIPv6:
		n = 16
	case socksDomain:
		if _, err := io.ReadFull(nc, b[:1]); err != nil {
			return socksReadError(err)
		}
		n = int(b[0])
	default:
		return fmt.Errorf("SOCKS5: the proxy replied with address type %d", b[3])
	}
	if _, err := io.ReadFull(nc, b[:n+2]); err != nil {
		return socksReadError(err)
	}
	return nil
}

// socksSignIn sends user's name and password (RFC 1929 §2), using b's room.
func socksSignIn(nc net.Conn, user *url.Userinfo, b []byte) error {
	name := user.Username()
	password, _ := user.Password()
	if len(name) == 0 || len(name) > 255 || len(password) > 255 {
		return errors.New("SOCKS5: the user name must have 1 to 255 bytes, and the password at most 255")
	}
	b = append(b, socksPasswordVer, byte(len(name)))
	b = append(b, name...)
	b = append(b, byte(len(password)))
	b = append(b, password...)
	if _, err := nc.Write(b); err != nil {
		return err
	}
	if _, err := io.ReadFull(nc, b[:2]); err != nil {
		return socksReadError(err)
	}
	if b[1] != 0 {
		return fmt.Errorf("SOCKS5: the proxy refused the user name and password of %q", name)
	}
	return nil
}

// socksReadError says that the proxy's message was cut short.
func socksReadError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("SOCKS5: the proxy closed the connection: %w", err)
	}
	return err
}
