package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

const dialSynopsis = `wskit dial [flags] URL

Opens a WebSocket session to URL: ws:// or wss://, http:// and https://
standing for them, and no scheme for ws:// (localhost:8080 is
ws://localhost:8080/). Each line read from stdin is sent as a text message
(binary with -binary), and each message received is printed on stdout, one
per line: text as is, binary as "[binary]" and its bytes in hex; with
-json, one JSON object per line instead. How the session opened and closed
goes to stderr, so that stdout holds the messages alone.

When stdin is a terminal, a "> " prompt asks for each line, received
messages are marked "< " when stdout is a terminal too, and a line that
starts with "/" is a command:

  /ping [payload]          send a ping, and show the round-trip time when
                           its pong comes
  /close [code [reason]]   close the session with code (1000) and reason
  /quit                    close with 1000 and exit
  /help                    list the commands
  //text                   send "/text"

With -commands, lines are read as commands whatever stdin is. End of input
(Ctrl-D) closes the session with 1000.

When stdin is not a terminal (a pipe, a file), its lines are sent, then the
replies are awaited: the session is closed with 1000 once none has come
for -wait after the input ended, or at once with -wait 0, unless the server
closes it first. -send gives the messages instead of stdin, and the same
wait follows them. With -count N, wskit exits once N messages have arrived,
however long that takes.

The exit code is 0 when the session closed normally (1000, 1001, no code,
or the code of a /close) after -count messages if asked, 1 otherwise, 2 for
bad usage.`

// dialConfig holds the flags of wskit dial.
type dialConfig struct {
	url          string
	send         []string
	count        int
	wait         time.Duration // after the input ended, for replies
	binary       bool
	json         bool // print messages as JSON objects
	commands     bool // take "/" lines for commands even from a pipe
	header       http.Header
	origin       string
	subprotocols []string
	timeout      time.Duration
	deflate      bool
	insecure     bool   // accept any certificate
	caFile       string // PEM certificates to trust
	http2        bool   // open the session as an HTTP/2 stream (RFC 8441)
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
	switch http.CanonicalHeaderKey(name) {
	case "Sec-Websocket-Protocol":
		return fmt.Errorf("header %s: offer subprotocols with -subprotocol", name)
	case "Sec-Websocket-Extensions":
		return fmt.Errorf("header %s: wskit dial offers permessage-deflate itself (see -deflate)", name)
	case "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version":
		return fmt.Errorf("header %s: wskit dial sets it for the handshake", name)
	}
	http.Header(h).Add(name, strings.TrimSpace(value))
	return nil
}

func parseDialFlags(args []string, stdout, stderr io.Writer) (dialConfig, error) {
	c := dialConfig{header: http.Header{}, deflate: true, wait: 2 * time.Second}
	fs := newFlagSet("dial", dialSynopsis, stdout, stderr)
	fs.Var((*listValue)(&c.send), "send", "send this `message` (repeatable) instead of reading stdin")
	fs.IntVar(&c.count, "count", 0, "exit after receiving `N` messages; 0 runs until the session ends or -wait passes")
	fs.DurationVar(&c.wait, "wait", c.wait, "once the input (a pipe, a file or -send) has ended, close after this long without a message; 0 closes at once")
	fs.BoolVar(&c.binary, "binary", false, "send messages as binary instead of text")
	fs.BoolVar(&c.json, "json", false, `print each message as {"type":"text"|"binary","data":...,"time":...} (binary data in base64), and the end as {"close":{"code":...,"reason":...}}`)
	fs.BoolVar(&c.commands, "commands", false, "take lines starting with / for commands (/ping, /close, /quit) even when stdin is not a terminal")
	fs.Var(headerValue(c.header), "H", "add a request `header` such as 'Authorization: Bearer x' (repeatable)")
	fs.StringVar(&c.origin, "origin", "", "send this Origin `header`, as a page of that origin would, such as http://localhost:8080")
	fs.Var((*listValue)(&c.subprotocols), "subprotocol", "offer this `subprotocol` (repeatable, in order of preference)")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Second, "bound on the opening handshake and on the close handshake; 0 waits forever")
	fs.BoolVar(&c.deflate, "deflate", true, "offer permessage-deflate compression (RFC 7692)")
	fs.BoolVar(&c.insecure, "insecure", false, "wss://: accept any certificate, such as a self-signed one, without checking it")
	fs.BoolVar(&c.http2, "http2", false, "open the session as a stream of an HTTP/2 connection (RFC 8441): by ALPN for wss://, with prior knowledge (h2c) for ws://")
	fs.StringVar(&c.caFile, "ca", "", "wss://: trust the certificates in this PEM `file` (such as the one wskit serve -tls-self-signed prints)")
	rest, err := fs.parse(args)
	switch {
	case err != nil:
		return c, err
	case len(rest) != 1:
		fs.showUsage()
		return c, errors.New("want exactly one URL")
	case c.count < 0:
		return c, errors.New("-count must not be negative")
	case c.wait < 0:
		return c, errors.New("-wait must not be negative")
	case c.timeout < 0:
		return c, errors.New("-timeout must not be negative")
	}
	if c.origin != "" {
		c.header.Set("Origin", c.origin)
	}
	c.url, err = websocketURL(rest[0])
	return c, err
}

// websocketURL checks raw and maps http(s) to ws(s). Without a scheme it is
// a ws:// URL; without a host name, one of localhost; without a path, one
// of "/".
func websocketURL(raw string) (string, error) {
	s := raw
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("URL %q: %v", raw, errors.Unwrap(err))
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
	if u.Hostname() == "" { // :8080
		u.Host = "localhost" + u.Host
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), nil
}

// runDial runs wskit dial and returns the exit code.
func runDial(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := parseDialFlags(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "wskit dial: %v\n", err)
		return 2
	}
	s, err := dial(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "wskit dial: %s\n", describeDialError(c, err))
		return 1
	}
	d := &dialSession{
		c:        c,
		s:        s,
		typ:      wskit.Text,
		terminal: len(c.send) == 0 && isTerminal(stdin),
		activity: make(chan struct{}, 1),
		closing:  make(chan closeRequest, 1),
	}
	if c.binary {
		d.typ = wskit.Binary
	}
	s.OnPong(d.pong)
	d.commands = c.commands || d.terminal
	d.out = &console{
		stdout: stdout,
		stderr: stderr,
		json:   c.json,
		marks:  !c.json && isTerminal(stdout),
		echo:   !d.terminal && isTerminal(stderr),
		prompt: d.terminal && isTerminal(stderr),
	}
	connected := "connected to " + redacted(c.url)
	if p := s.Subprotocol(); p != "" {
		connected += " (subprotocol " + p + ")"
	}
	if e := s.Extensions(); e != "" {
		connected += " (extensions " + e + ")"
	}
	if d.commands {
		connected += "; /help lists the commands"
	}
	d.out.note(connected)
	return d.run(ctx, stdin)
}

// dialSession is the session of wskit dial, with where its input comes
// from and where its output goes.
type dialSession struct {
	c        dialConfig
	s        *wskit.Session
	out      *console
	typ      wskit.MessageType // of the messages sent
	terminal bool              // stdin is a terminal
	commands bool              // "/" lines are commands

	activity chan struct{}     // a message came or went; holds one
	closing  chan closeRequest // a /close or /quit; holds one

	pingMu sync.Mutex
	pings  map[string]time.Time // when each /ping with a payload was sent, by payload
}

// maxPings bounds the pings with a payload that wait for their pong: past
// it, the oldest is forgotten.
const maxPings = 16

// closeRequest is a close that a command asked for.
type closeRequest struct {
	code   wskit.CloseCode
	reason string
}

// run sends the input and prints what arrives until the session ends, the
// -count messages have arrived, -wait has passed without a message after
// the input ended, a command closes, or ctx ends. It closes the session and
// returns the exit code.
func (d *dialSession) run(ctx context.Context, stdin io.Reader) int {
	received := make(chan int, 1)
	go func() { received <- d.receive() }()
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		if len(d.c.send) > 0 {
			d.sendFlags()
		} else {
			d.readInput(stdin)
		}
	}()

	idle := time.NewTimer(time.Hour)
	idle.Stop()
	var idleC <-chan time.Time // the wait for replies, once the input ended
	input := (<-chan struct{})(inputDone)
	req := closeRequest{code: wskit.CloseNormal}
	asked := false // a command asked for the close
	n := -1
wait:
	for {
		select {
		case n = <-received:
			break wait
		case <-input:
			input = nil
			switch {
			case d.c.count > 0: // wait for the messages however long
			case d.terminal || d.c.wait == 0:
				break wait
			default:
				idle.Reset(d.c.wait)
				idleC = idle.C
			}
		case <-d.activity:
			if idleC != nil {
				idle.Reset(d.c.wait)
			}
		case <-idleC:
			break wait
		case req = <-d.closing:
			asked = true
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	idle.Stop()
	d.s.Close(req.code, req.reason)
	if n < 0 {
		n = <-received
	}
	return d.report(n, asked)
}

// poke tells run that a message came or went.
func (d *dialSession) poke() {
	select {
	case d.activity <- struct{}{}:
	default:
	}
}

// receive prints received messages until the session ends or -count of
// them (when positive) have arrived, and returns how many it printed.
func (d *dialSession) receive() int {
	n := 0
	for m := range d.s.Messages() {
		d.out.received(m)
		d.poke()
		if n++; n == d.c.count {
			break
		}
	}
	return n
}

// sendFlags sends the messages of -send.
func (d *dialSession) sendFlags() {
	for _, m := range d.c.send {
		if d.s.Send(d.typ, []byte(m)) != nil {
			return
		}
		d.out.sent(d.typ, m)
		d.poke()
	}
}

// readInput sends each line of r as a message, or runs it when it is a
// command, until r ends, a send fails or a command ends the session.
func (d *dialSession) readInput(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		d.out.showPrompt()
		line, err := br.ReadString('\n')
		d.out.prompted(err != nil)
		if line != "" {
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if !d.line(line) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// line sends or runs one line of input and reports whether to read on.
func (d *dialSession) line(line string) bool {
	if d.commands && strings.HasPrefix(line, "/") {
		if !strings.HasPrefix(line, "//") {
			return d.command(line)
		}
		line = line[1:]
	}
	if d.s.Send(d.typ, []byte(line)) != nil {
		return false
	}
	if !d.terminal { // a typed line is on the screen already
		d.out.sent(d.typ, line)
	}
	d.poke()
	return true
}

const commandHelp = `commands:
  /ping [payload]          send a ping and show its round-trip time
  /close [code [reason]]   close with code (1000) and reason
  /quit                    close with 1000 and exit
  //text                   send "/text"`

// command runs a command line and reports whether to read on.
func (d *dialSession) command(line string) bool {
	name, arg, _ := strings.Cut(line[1:], " ")
	switch name {
	case "ping":
		if len(arg) > frame.MaxControlPayload {
			d.out.note(fmt.Sprintf("/ping: a ping's payload is at most %d bytes, not %d", frame.MaxControlPayload, len(arg)))
			return true
		}
		if arg == "" {
			go d.ping()
			return true
		}
		if err := d.pingWith(arg); err != nil {
			d.out.note("/ping: " + trimLibraryPrefix(err.Error()))
			return false
		}
		return true
	case "close":
		req, err := parseCloseCommand(arg)
		if err != nil {
			d.out.note("/close: " + err.Error())
			return true
		}
		d.closing <- req
		return false
	case "quit", "exit":
		d.closing <- closeRequest{code: wskit.CloseNormal}
		return false
	case "help", "?":
		d.out.note(commandHelp)
		return true
	}
	d.out.note(fmt.Sprintf("unknown command /%s; %s", name, commandHelp))
	return true
}

// ping runs /ping: it shows the round-trip time of a ping once its pong
// has come, or why none came within -timeout.
func (d *dialSession) ping() {
	ctx := context.Background()
	if d.c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.c.timeout)
		defer cancel()
	}
	rtt, err := d.s.Ping(ctx)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		d.out.note(fmt.Sprintf("/ping: no pong within -timeout %v", d.c.timeout))
	case err != nil:
		d.out.note("/ping: " + trimLibraryPrefix(err.Error()))
	default:
		d.out.note("pong in " + roundTrip(rtt))
	}
}

// pingWith runs /ping with a payload: the pong that echoes it shows the
// round-trip time (see pong).
func (d *dialSession) pingWith(payload string) error {
	d.pingMu.Lock()
	if d.pings == nil {
		d.pings = make(map[string]time.Time)
	}
	if len(d.pings) >= maxPings {
		var oldest string
		for p, at := range d.pings {
			if oldest == "" || at.Before(d.pings[oldest]) {
				oldest = p
			}
		}
		delete(d.pings, oldest)
	}
	d.pings[payload] = time.Now()
	d.pingMu.Unlock()
	return d.s.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, []byte(payload))
}

// pong is the session's OnPong: it shows the round-trip time of a /ping
// with a payload when the pong echoing it comes.
func (d *dialSession) pong(payload []byte) {
	d.pingMu.Lock()
	sent, ok := d.pings[string(payload)]
	if ok {
		delete(d.pings, string(payload))
	}
	d.pingMu.Unlock()
	if ok {
		d.out.note(fmt.Sprintf("pong %q in %s", printable(string(payload)), roundTrip(time.Since(sent))))
	}
}

// roundTrip formats a round-trip time to the microsecond.
func roundTrip(d time.Duration) string { return d.Round(time.Microsecond).String() }

// parseCloseCommand parses the arguments of /close: a code, 1000 when
// none, and a reason.
func parseCloseCommand(arg string) (closeRequest, error) {
	req := closeRequest{code: wskit.CloseNormal}
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return req, nil
	}
	code, reason, _ := strings.Cut(arg, " ")
	n, err := strconv.Atoi(code)
	if err != nil || !frame.CloseCode(n).ValidOnWire() {
		return req, fmt.Errorf("%q is not a close code that may be sent: 1000-1003, 1007-1014 or 3000-4999", code)
	}
	if len(reason) > frame.MaxCloseReason {
		return req, fmt.Errorf("the reason is %d bytes, over the %d of a close frame", len(reason), frame.MaxCloseReason)
	}
	req.code, req.reason = wskit.CloseCode(n), reason
	return req, nil
}

// report prints how the session ended and returns the exit code. asked is
// whether a command closed the session, with a code of its choice.
func (d *dialSession) report(received int, asked bool) int {
	s := d.s
	<-s.Done()
	reason, _ := s.CloseReason()
	err := s.Err()
	d.out.closed(reason, err)
	if d.c.count > 0 && received < d.c.count {
		d.out.note(fmt.Sprintf("wskit dial: received %d of %d messages", received, d.c.count))
		return 1
	}
	if err != nil {
		return 1
	}
	switch {
	case asked:
		return 0
	case reason.Code == wskit.CloseNormal, reason.Code == wskit.CloseGoingAway, reason.Code == wskit.CloseNoStatus:
		return 0
	}
	return 1
}

// dial opens the session c describes.
func dial(ctx context.Context, c dialConfig) (*wskit.Session, error) {
	o := wskit.Options{Timeout: c.timeout, HandshakeTimeout: c.timeout, Subprotocols: c.subprotocols}
	if c.timeout == 0 {
		o.Timeout, o.HandshakeTimeout = -1, -1 // -timeout 0 waits forever
	}
	if c.deflate {
		o.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
	}
	do := &wskit.DialOptions{Options: o, Header: c.header, HTTP2: c.http2}
	var err error
	if do.TLSConfig, err = clientTLS(c.insecure, c.caFile); err != nil {
		return nil, err
	}
	return wskit.Dial(ctx, c.url, do)
}

// describeDialError says why dialling c.url failed, in one line that names
// the URL once and no package.
func describeDialError(c dialConfig, err error) string {
	u := redacted(c.url)
	var herr *wskit.HandshakeError
	if errors.As(err, &herr) {
		return u + ": " + describeRefusal(herr)
	}
	if errors.Is(err, context.DeadlineExceeded) && c.timeout > 0 {
		return fmt.Sprintf("%s: the opening handshake took longer than -timeout %v", u, c.timeout)
	}
	msg := err.Error()
	if inner := errors.Unwrap(err); inner != nil && strings.HasPrefix(msg, "wskit: dial ") {
		msg = inner.Error() // Dial's error names the URL, which comes first here
	}
	return u + ": " + trimLibraryPrefix(msg)
}

// trimLibraryPrefix removes the "wskit: " or "wskit: " that the
// library's errors start with: the command's own prefix says where an error
// comes from.
func trimLibraryPrefix(msg string) string {
	for {
		t := strings.TrimPrefix(strings.TrimPrefix(msg, "wskit: "), "wskit: ")
		if t == msg {
			return msg
		}
		msg = t
	}
}

// describeRefusal says how a server answered an upgrade without one: its
// status, where a redirect leads, and one line of the body at most.
func describeRefusal(herr *wskit.HandshakeError) string {
	status := strconv.Itoa(herr.StatusCode)
	if herr.Reason != "" {
		status += " " + herr.Reason
	}
	if loc := herr.Header.Get("Location"); loc != "" && herr.StatusCode/100 == 3 {
		return fmt.Sprintf("the server answered HTTP status %s, a redirect to %s, which is not followed", status, printable(loc))
	}
	msg := "the server refused the WebSocket upgrade with HTTP status " + status
	if herr.StatusCode < 400 {
		msg = "the server answered HTTP status " + status + ", not a WebSocket upgrade"
	}
	if line := bodyLine(herr.Header.Get("Content-Type"), herr.Body); line != "" {
		msg += ": " + line
	}
	return msg
}

// maxBodyLine bounds the part of a refusal's body shown, in bytes.
const maxBodyLine = 160

var titleTag = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// bodyLine returns one line that sums up a refusal's body: the title of an
// HTML page (or nothing when it has none), else the first line that is not
// blank, cut to maxBodyLine bytes.
func bodyLine(contentType, body string) string {
	var line string
	trimmed := strings.TrimSpace(body)
	if strings.Contains(strings.ToLower(contentType), "html") || strings.HasPrefix(trimmed, "<") {
		if m := titleTag.FindStringSubmatch(body); m != nil {
			line = html.UnescapeString(strings.Join(strings.Fields(m[1]), " "))
		}
	} else {
		for l := range strings.Lines(trimmed) {
			if l = strings.TrimSpace(l); l != "" {
				line = l
				break
			}
		}
	}
	line = printable(line)
	if len(line) > maxBodyLine {
		cut := maxBodyLine
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "…"
	}
	return line
}

// printable replaces what a terminal would act on, such as escape
// sequences, in text from the server.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) && r != ' ' {
			return '?'
		}
		return r
	}, s)
}

// redacted returns the URL with its password, if any, masked.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}
