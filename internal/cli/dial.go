package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
)

const dialSynopsis = `wskit dial [flags] URL

Opens a WebSocket session to URL (ws://, wss://; http:// and https:// are
mapped to them). Each line read from stdin is sent as a text message, and
each message received is printed on stdout: text as is, binary as
"[binary]" and its bytes in hex. End of input closes the session with 1000
at once: replies still on their way are not printed (use -count to wait for
them). The close code and reason are printed on stderr.

With -send, the given messages are sent and stdin is not read. With
-count N, wskit exits once N messages have arrived, and end of input does
not close the session early.

The exit code is 0 when the session closed normally (1000, 1001 or no
code) after -count messages if asked, 1 otherwise, 2 for bad usage.`

// dialConfig holds the flags of wskit dial.
type dialConfig struct {
	url          string
	send         []string
	count        int
	binary       bool
	header       http.Header
	subprotocols []string
	timeout      time.Duration
	deflate      bool
	insecure     bool   // accept any certificate
	caFile       string // PEM certificates to trust
}

// listValue is a repeatable string flag.
type listValue []string

func (l *listValue) String() string     { return strings.Join(*l, ", ") }
func (l *listValue) Set(s string) error { *l = append(*l, s); return nil }

// headerValue is a repeatable 'Name: value' flag.
type headerValue http.Header

func (h headerValue) String() string { return "" }

func (h headerValue) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("header %q: want 'Name: value'", s)
	}
	http.Header(h).Add(name, strings.TrimSpace(value))
	return nil
}

func parseDialFlags(args []string, stderr io.Writer) (dialConfig, error) {
	c := dialConfig{header: http.Header{}, deflate: true}
	fs := flagSet("dial", dialSynopsis, stderr)
	fs.Var((*listValue)(&c.send), "send", "send this `message` (repeatable) instead of reading stdin")
	fs.IntVar(&c.count, "count", 0, "exit after receiving `N` messages; 0 runs until the session ends")
	fs.BoolVar(&c.binary, "binary", false, "send messages as binary instead of text")
	fs.Var(headerValue(c.header), "H", "add a request `header` such as 'Authorization: Bearer x' (repeatable)")
	fs.Var((*listValue)(&c.subprotocols), "subprotocol", "offer this `subprotocol` (repeatable, in order of preference)")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Second, "bound on the opening handshake and on the close handshake; 0 waits forever")
	fs.BoolVar(&c.deflate, "deflate", true, "offer permessage-deflate compression (RFC 7692)")
	fs.BoolVar(&c.insecure, "insecure", false, "wss://: accept any certificate, such as a self-signed one, without checking it")
	fs.StringVar(&c.caFile, "ca", "", "wss://: trust the certificates in this PEM `file` (such as the one wskit serve -tls-self-signed prints)")
	rest, err := parseArgs(fs, args)
	switch {
	case err != nil:
		return c, err
	case len(rest) != 1:
		fs.Usage()
		return c, errors.New("want exactly one URL")
	case c.count < 0:
		return c, errors.New("-count must not be negative")
	case c.timeout < 0:
		return c, errors.New("-timeout must not be negative")
	}
	c.url, err = websocketURL(rest[0])
	return c, err
}

// websocketURL checks u and maps http(s) to ws(s).
func websocketURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("URL %q: want a ws:// or wss:// URL", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("URL %q has no host", raw)
	}
	return u.String(), nil
}

// runDial runs wskit dial and returns the exit code.
func runDial(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := parseDialFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "wskit dial: %v\n", err)
		return 2
	}
	s, err := dial(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "wskit dial: %v\n", err)
		return 1
	}
	connected := "connected to " + c.url
	if p := s.Subprotocol(); p != "" {
		connected += " (subprotocol " + p + ")"
	}
	if e := s.Extensions(); e != "" {
		connected += " (extensions " + e + ")"
	}
	fmt.Fprintln(stderr, connected)

	typ := wskit.Text
	if c.binary {
		typ = wskit.Binary
	}
	received := make(chan int, 1)
	go func() { received <- printMessages(s, stdout, c.count) }()
	inputDone := make(chan struct{})
	if len(c.send) > 0 {
		for _, m := range c.send {
			if s.Send(typ, []byte(m)) != nil {
				break
			}
		}
	} else {
		go func() { sendLines(s, typ, stdin); close(inputDone) }()
	}
	closeOnEOF := inputDone
	if c.count > 0 {
		closeOnEOF = nil // wait for the messages even after the input ends
	}

	n := -1
	select {
	case n = <-received:
	case <-closeOnEOF:
	case <-ctx.Done():
	}
	s.Close(wskit.CloseNormal, "")
	if n < 0 {
		n = <-received
	}
	return report(s, stderr, c.count, n)
}

// dial opens the session c describes.
func dial(ctx context.Context, c dialConfig) (*wskit.Session, error) {
	o := wskit.DefaultOptions()
	o.Timeout = c.timeout
	o.HandshakeTimeout = c.timeout
	if c.deflate {
		o.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
	}
	do := &wskit.DialOptions{Options: &o, Header: c.header, Subprotocols: c.subprotocols}
	if c.insecure || c.caFile != "" {
		do.TLSConfig = &tls.Config{InsecureSkipVerify: c.insecure}
		if c.caFile != "" {
			pem, err := os.ReadFile(c.caFile)
			if err != nil {
				return nil, err
			}
			do.TLSConfig.RootCAs = x509.NewCertPool()
			if !do.TLSConfig.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-ca %s: no PEM certificate in it", c.caFile)
			}
		}
	}
	s, err := wskit.Dial(ctx, c.url, do)
	var herr *wskit.HandshakeError
	if errors.As(err, &herr) {
		msg := fmt.Sprintf("%s: the server refused the WebSocket upgrade with HTTP status %d", c.url, herr.StatusCode)
		if herr.Reason != "" {
			msg += " " + herr.Reason
		}
		if loc := herr.Header.Get("Location"); loc != "" && herr.StatusCode/100 == 3 {
			return nil, fmt.Errorf("%s, a redirect to %s, which is not followed", msg, loc)
		}
		if body := strings.TrimSpace(herr.Body); body != "" {
			msg += ": " + body
		}
		return nil, errors.New(msg)
	}
	return s, err
}

// printMessages prints received messages, one per line, until the session
// ends or count of them (when positive) have been printed. It returns how
// many it printed.
func printMessages(s *wskit.Session, w io.Writer, count int) int {
	n := 0
	for m := range s.Messages() {
		switch {
		case m.Type == wskit.Binary && len(m.Payload) == 0:
			fmt.Fprintln(w, "[binary]")
		case m.Type == wskit.Binary:
			fmt.Fprintf(w, "[binary] %s\n", hex.EncodeToString(m.Payload))
		default:
			fmt.Fprintf(w, "%s\n", m.Payload)
		}
		if n++; n == count {
			break
		}
	}
	return n
}

// sendLines sends each line of r as a message of type typ until r ends or
// a send fails.
func sendLines(s *wskit.Session, typ wskit.MessageType, r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if s.Send(typ, []byte(line)) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// report prints how the session ended and returns the exit code.
func report(s *wskit.Session, stderr io.Writer, count, received int) int {
	<-s.Done()
	reason, _ := s.CloseReason()
	msg := "closed: " + reason.String()
	err := s.Err()
	if err != nil {
		msg += " (" + err.Error() + ")"
	}
	fmt.Fprintln(stderr, msg)
	if count > 0 && received < count {
		fmt.Fprintf(stderr, "wskit dial: received %d of %d messages\n", received, count)
		return 1
	}
	switch reason.Code {
	case wskit.CloseNormal, wskit.CloseGoingAway, wskit.CloseNoStatus:
		if err == nil {
			return 0
		}
	}
	return 1
}
