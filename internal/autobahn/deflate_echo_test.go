package autobahn

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
)

// A small permessage-deflate echo server, to check the judging of 12.x and
// 13.x end to end. It answers every handshake with a fixed
// Sec-WebSocket-Extensions response and mirrors the harness's own deflater
// and inflater for its side; the independent checks of those against
// compress/flate and Node's ws are elsewhere.

type deflateFault int

const (
	deflateOK         deflateFault = iota
	deflatePlainEcho               // echo uncompressed (allowed)
	deflateCorrupt                 // damage the compressed echo
	deflateRSVOnCont               // echo in two frames with RSV1 on both
	deflateKeepsCtx                // keep the compression context despite server_no_context_takeover
	deflateRefuse                  // answer 400 to the handshake
	deflateNoResponse              // never echo
)

type deflateEchoServer struct {
	response string // Sec-WebSocket-Extensions of the 101; "" declines the offer
	fault    deflateFault
}

func startDeflateEcho(t *testing.T, srv deflateEchoServer) string {
	t.Helper()
	return serveLoopback(t, srv.serve)
}

// sides returns the server's deflater and inflater for the response.
func (srv deflateEchoServer) sides() (*deflater, *inflater) {
	els, err := parseExtensions([]string{srv.response})
	if err != nil || len(els) == 0 {
		return nil, nil
	}
	own := deflateParams{clientMaxWindowBits: 15}  // our compression, in the deflater's terms
	peer := deflateParams{serverMaxWindowBits: 15} // the client's, in the inflater's
	for _, p := range els[0].params {
		bits, _ := windowBits(p.value)
		switch p.name {
		case "server_no_context_takeover":
			own.clientNoContextTakeover = srv.fault != deflateKeepsCtx
		case "server_max_window_bits":
			own.clientMaxWindowBits = bits
		case "client_no_context_takeover":
			peer.serverNoContextTakeover = true
		case "client_max_window_bits":
			peer.serverMaxWindowBits = bits
		}
	}
	return newDeflater(&own), newInflater(&peer)
}

func (srv deflateEchoServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	tp := textproto.NewReader(br)
	if _, err := tp.ReadLine(); err != nil {
		return
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return
	}
	if srv.fault == deflateRefuse {
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		return
	}
	sum := sha1.Sum([]byte(h.Get("Sec-Websocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n"
	if srv.response != "" && h.Get("Sec-Websocket-Extensions") != "" {
		resp += "Sec-WebSocket-Extensions: " + srv.response + "\r\n"
	}
	if _, err := io.WriteString(c, resp+"\r\n"); err != nil {
		return
	}
	tx, rx := srv.sides()
	var msg []byte
	var op byte
	compressed := false
	for {
		var hd [2]byte
		if _, err := io.ReadFull(br, hd[:]); err != nil {
			return
		}
		n := uint64(hd[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			io.ReadFull(br, b[:])
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			io.ReadFull(br, b[:])
			n = binary.BigEndian.Uint64(b[:])
		}
		var key [4]byte
		io.ReadFull(br, key[:])
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		maskBytes(p, key, 0)
		fop := hd[0] & 0x0f
		switch fop {
		case 8:
			c.Write(serverFrame(nil, true, 0, 8, p))
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, br)
			return
		case 9:
			c.Write(serverFrame(nil, true, 0, 10, p))
			continue
		case 1, 2:
			op, msg, compressed = fop, msg[:0], hd[0]&0x40 != 0
		}
		msg = append(msg, p...)
		if hd[0]&0x80 == 0 {
			continue
		}
		if compressed {
			out, err := rx.inflate(msg, 1<<30)
			if err != nil {
				return
			}
			msg = append(msg[:0], out...)
		}
		if srv.fault == deflateNoResponse {
			continue
		}
		if tx == nil || srv.fault == deflatePlainEcho {
			c.Write(serverFrame(nil, true, 0, op, msg))
			continue
		}
		z := tx.compress(msg)
		switch srv.fault {
		case deflateCorrupt:
			z[len(z)/2] ^= 0x55
		case deflateRSVOnCont:
			if len(z) > 1 {
				b := serverFrame(nil, false, 4, op, z[:1])
				c.Write(serverFrame(b, true, 4, 0, z[1:]))
				continue
			}
		}
		c.Write(serverFrame(nil, true, 4, op, z))
	}
}

// serverFrame appends an unmasked frame.
func serverFrame(b []byte, fin bool, rsv, op byte, p []byte) []byte {
	b0 := op | rsv<<4
	if fin {
		b0 |= 0x80
	}
	switch n := len(p); {
	case n <= 125:
		b = append(b, b0, byte(n))
	case n <= 0xffff:
		b = append(b, b0, 126, byte(n>>8), byte(n))
	default:
		b = append(b, b0, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

// TestDeflateJudging runs cases of 12.x and 13.x against well- and
// ill-behaved servers and checks the verdicts and their details.
func TestDeflateJudging(t *testing.T) {
	byID := map[string]Case{}
	for _, c := range Cases() {
		byID[c.ID] = c
	}
	const pmd = "permessage-deflate"
	tests := []struct {
		srv    deflateEchoServer
		id     string
		want   string
		detail string
	}{
		{deflateEchoServer{response: pmd}, "12.1.1", OK, "server window 2^15, client window 2^15; sent 1000 messages"},
		{deflateEchoServer{response: pmd}, "12.3.11", OK, "1000 of the echoes came compressed"},
		{deflateEchoServer{response: pmd + "; client_no_context_takeover"}, "12.2.3", OK, "client window 2^15 without context takeover"},
		{deflateEchoServer{response: pmd + "; client_max_window_bits=9"}, "12.4.4", OK, "client window 2^9"},
		{deflateEchoServer{response: pmd + "; server_no_context_takeover"}, "13.2.4", OK, "server window 2^15 without context takeover"},
		{deflateEchoServer{response: pmd + "; server_max_window_bits=8"}, "13.3.2", OK, "server window 2^8"},
		{deflateEchoServer{response: pmd + "; server_no_context_takeover"}, "13.7.3", OK, "offer 2 of 3"},
		{deflateEchoServer{response: pmd, fault: deflatePlainEcho}, "12.1.2", OK, "0 of the echoes came compressed"},
		{deflateEchoServer{}, "12.5.1", Unimplemented, "accepted none of the permessage-deflate offers"},
		{deflateEchoServer{response: pmd}, "13.2.1", Failed, "server_no_context_takeover and the response lacks it"},
		{deflateEchoServer{response: pmd + "; server_no_context_takeover; server_max_window_bits=9"}, "13.5.1", Failed, "server_max_window_bits=9 exceeds the 8 offered"},
		{deflateEchoServer{response: pmd + "; server_max_window_bits=9"}, "13.3.1", Failed, "server_max_window_bits=9 exceeds the 8 offered"},
		{deflateEchoServer{response: pmd + "; client_max_window_bits"}, "12.1.1", Failed, "needs a value in a response"},
		{deflateEchoServer{response: "permessage-deflate, permessage-deflate"}, "12.1.1", Failed, "permessage-deflate 2 times"},
		{deflateEchoServer{response: pmd, fault: deflateRefuse}, "12.1.1", Failed, "declines it by leaving it out"},
		{deflateEchoServer{response: pmd, fault: deflateCorrupt}, "12.1.4", Failed, ""},
		{deflateEchoServer{response: pmd, fault: deflateRSVOnCont}, "12.1.4", Failed, "RSV1 set on a continuation frame"},
		{deflateEchoServer{response: pmd + "; server_no_context_takeover", fault: deflateKeepsCtx}, "13.2.5", Failed, "cannot be inflated"},
		{deflateEchoServer{response: pmd, fault: deflateNoResponse}, "12.1.1", Failed, "No echo of message 1 of 1000 within 10s"},
	}
	if testing.Short() {
		tests = tests[:3]
	}
	for _, tc := range tests {
		url := startDeflateEcho(t, tc.srv)
		r := Run(context.Background(), url, byID[tc.id], 0)
		if r.Behavior != tc.want || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("response %q, fault %d, case %s: got %s, want %s with %q\n\t%v", tc.srv.response, tc.srv.fault, tc.id, r.Behavior, tc.want, tc.detail, r)
		}
	}
}

// TestNoDeflateServer checks that a server without permessage-deflate makes
// 12.x and 13.x UNIMPLEMENTED, with a clean close.
func TestNoDeflateServer(t *testing.T) {
	url := startEcho(t, noFault)
	rs := RunAll(context.Background(), url, Filter([]string{"12.*.1", "13.*.18"}, nil))
	if len(rs) != 12 {
		t.Fatalf("ran %d cases, want 12", len(rs))
	}
	for _, r := range rs {
		if r.Behavior != Unimplemented || r.Close != OK || r.CloseCode != 1000 {
			t.Errorf("%v", r)
		}
	}
}
