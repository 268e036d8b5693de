package wskit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/wsconn"
)

// DialOptions configure Dial.
type DialOptions struct {
	// Options for the session; nil means DefaultOptions(). Subprotocols,
	// OriginPatterns and CheckOrigin are server settings and are ignored.
	Options *Options
	// Subprotocols offered to the server, in order of preference.
	Subprotocols []string
	// Header holds extra request headers, such as Origin or Authorization.
	Header http.Header
}

// HandshakeError is returned by Dial when the server does not accept the
// upgrade.
type HandshakeError struct {
	StatusCode int    // the HTTP status the server answered with
	Reason     string // its status text
	Body       string // the start of the response body
}

func (e *HandshakeError) Error() string {
	msg := fmt.Sprintf("websocket: handshake failed: expected status 101 but was %d %s", e.StatusCode, e.Reason)
	if b := strings.TrimSpace(e.Body); b != "" {
		msg += ": " + b
	}
	return msg
}

// Dial opens a client session to a ws:// or wss:// URL. The session masks
// every frame, as RFC 6455 requires of clients, and behaves like a server's
// default session: pongs, keepalive pings, the close handshake. Close it
// when done; its handler-less lifetime is the caller's.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Session, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	o := DefaultOptions()
	if opts.Options != nil {
		o = *opts.Options
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	for _, p := range opts.Subprotocols {
		if !isToken(p) {
			return nil, fmt.Errorf("wskit: subprotocol %q is not an HTTP token", p)
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var herr *HandshakeError
	d := ws.Dialer{
		Timeout:   o.HandshakeTimeout,
		Protocols: opts.Subprotocols,
		OnStatusError: func(status int, reason []byte, resp io.Reader) {
			herr = &HandshakeError{StatusCode: status, Reason: string(reason)}
			if r, err := http.ReadResponse(bufio.NewReader(resp), nil); err == nil {
				body, _ := io.ReadAll(io.LimitReader(r.Body, 512))
				herr.Body = string(body)
			}
		},
	}
	if len(opts.Header) > 0 {
		d.Header = ws.HandshakeHeaderHTTP(opts.Header)
	}
	offers, err := codec.OfferExtensions(o.Extensions)
	if err != nil {
		return nil, err
	}
	for _, o := range offers {
		opt := httphead.Option{Name: []byte(o.Name)}
		for _, p := range o.Params { // in order: the offer is reproducible
			opt.Parameters.Set([]byte(p.Name), []byte(p.Value))
		}
		d.Extensions = append(d.Extensions, opt)
	}
	nc, br, hs, err := d.Dial(ctx, rawURL)
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			if herr == nil {
				herr = &HandshakeError{StatusCode: int(se)}
			}
			return nil, herr
		}
		return nil, fmt.Errorf("websocket: dial %s: %w", u.Redacted(), err)
	}
	exts, err := confirmExtensions(o.Extensions, hs.Extensions)
	if err != nil {
		if br != nil {
			ws.PutReader(br)
		}
		nc.Close()
		return nil, fmt.Errorf("websocket: dial %s: %w", u.Redacted(), err)
	}
	var buffered []byte
	if br != nil {
		buffered = peekBuffered(br)
	}
	cfg := connConfig(&o, codec.Client, false)
	cfg.Codec.Extensions = exts
	c := wsconn.New(nc, buffered, cfg)
	if br != nil {
		ws.PutReader(br)
	}
	req := &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: opts.Header.Clone(), RemoteAddr: nc.RemoteAddr().String()}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	return newSession(c, &o, req, hs.Protocol, true), nil
}

// confirmExtensions checks the server's choice among the extensions offered
// and sets them up.
func confirmExtensions(installed []codec.Extension, selected []httphead.Option) ([]codec.Negotiated, error) {
	if len(selected) == 0 {
		return nil, nil
	}
	resp := make([]codec.ExtensionOffer, len(selected))
	for i, opt := range selected {
		resp[i].Name = string(opt.Name)
		opt.Parameters.ForEach(func(k, v []byte) bool {
			resp[i].Params = append(resp[i].Params, codec.Param{Name: string(k), Value: string(v)})
			return true
		})
	}
	return codec.ConfirmExtensions(installed, resp)
}
