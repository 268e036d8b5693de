// Package rawhook lets package wskit make the sessions of package wsraw.
// Their constructor takes a *wsconn.Conn, a type users cannot name, so
// wsraw does not export it: it registers it here instead, and wskit, which
// imports wsraw, calls it.
package rawhook

import (
	"net/http"

	"github.com/wskit/wskit/internal/wsconn"
)

// NewSession makes a *wsraw.Session on c, an upgraded connection whose
// protocol is in raw mode; owned says that no route handler runs it, so
// that its buffers go back when it is closed, and onClose, when not nil,
// is called once then. Package wsraw sets it.
var NewSession func(c *wsconn.Conn, req *http.Request, protocol string, owned bool, onClose func()) any
