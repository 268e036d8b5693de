// Package interop tests wskit against real peers: the ws npm package on
// Node.js, gorilla/websocket and coder/websocket clients, and headless
// Chromium driven by chromedp. Each peer runs against three server variants:
// the std engine (net/http) and the poll engine (epoll loops) with default
// sessions, and the poll engine with Events callbacks on the loop. Each peer
// also runs with permessage-deflate (RFC 7692), as a client of the server
// under test and, for ws, gorilla and coder, as a server for wskit's client.
// Over wss://, the same peers and OpenSSL's s_client run against each
// variant serving TLS, and hand-made clients send it bad TLS input.
// It has tests only; see README.md.
package interop
