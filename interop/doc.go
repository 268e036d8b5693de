// Package interop tests wskit against real peers: the ws npm package on
// Node.js, gorilla/websocket and coder/websocket clients, and headless
// Chromium driven by chromedp. It has tests only; see README.md.
package interop
