package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/poller"
)

// TestHubDeflate runs a wskit.Hub with permessage-deflate against real
// decompressors. The server (newHubServer) answers every message on /hub
// first with an echo to its sender, compressed with the connection's own
// context where the peer allows context takeover, then with a Publish, which
// the hub compresses once per parameter set without any context and queues
// to every subscriber as the same bytes. The peers, all on the same hub at
// once (hubPeers): ws with its default permessage-deflate and three
// variants, coder/websocket with and without context takeover, gorilla with
// compression, and gorilla without.
//
// In each of hubRounds some peers send hubMessages at once; then every peer
// must have received, byte for byte (by SHA-256), its own echoes in the
// order it sent them and every message of the round once, in the same order
// as every other peer (the hub's publish order), each sender's in the order
// it sent them. A peer whose window had gone stale would fail to inflate,
// or inflate the wrong bytes, at the first echo after a shared message.
// Each peer talks through a wireProxy, which reads the server's frames on
// their way down: every echo and broadcast of text that compresses must
// have gone with RSV1 in under half its size, random bytes as they are, and
// nothing compressed to the peer without permessage-deflate. Then half the
// peers leave, the others send a round more, and they leave too: every
// session must end with 1000 and the hub's Subscribers() drop to 4, then 0.
func TestHubDeflate(t *testing.T) {
	node := findNode(t)
	for _, v := range serverVariants {
		t.Run(v.name, func(t *testing.T) {
			if v.engine == wskit.EnginePoll && !poller.Supported {
				t.Skip("the poll engine is not supported on this platform")
			}
			testHubDeflate(t, node, newHubServer(t, v))
		})
	}
}

func testHubDeflate(t *testing.T, node string, hs *hubServer) {
	run := &hubRun{hs: hs, known: make(map[string]*hubMessage)}
	all := make([]int, len(hubPeers))
	for i, c := range hubPeers {
		all[i] = i
		run.peers = append(run.peers, dialHubPeer(t, node, hs, c))
		wantExtensions(t, c.name+": the answer", run.peers[i].answer, c.want)
	}
	greeting := newHubMessage("greeting", -1, -1, false, []byte(hubGreeting), compressible)
	run.known[greeting.sum] = greeting
	for _, p := range run.peers {
		// The server greets after Subscribe: once greeted, p is subscribed.
		got := p.receive(t, 1, "the greeting")
		if got[0].SHA256 != greeting.sum || got[0].Binary {
			t.Fatalf("%s: first message is %s, want the greeting", p.name, got[0])
		}
		p.got = append(p.got, hubReceived{greeting, false})
	}
	if n := hs.hub.Subscribers(); n != len(hubPeers) {
		t.Fatalf("%d subscribers once every peer was greeted, want %d", n, len(hubPeers))
	}
	answers := make([]string, len(run.peers))
	for i, p := range run.peers {
		answers[i] = p.answer
	}
	// The server formats its answers itself: each session's must be
	// exactly one that a peer got.
	if exts := hs.sessionExtensions(); !slices.Equal(sorted(exts), sorted(answers)) {
		t.Errorf("Session.Extensions() of the sessions: %q; the peers got %q", exts, answers)
	}

	for r, senders := range hubRounds {
		run.round(t, r, all, senders)
	}
	for _, p := range run.peers {
		checkWire(t, p)
	}
	// Half the peers leave, among them the only ones with a 10-bit window
	// and without compression, whose sharings are then unused; the others
	// go on with a round.
	leaving, staying := []int{0, 3, 5, 7}, []int{1, 2, 4, 6}
	run.leave(t, leaving, len(staying))
	run.round(t, len(hubRounds), staying, staying)
	for _, i := range staying {
		checkWire(t, run.peers[i])
	}
	run.leave(t, staying, 0)
	st := hs.hub.Stats()
	if st.Published != uint64(run.published) || st.Dropped != 0 || st.Disconnected != 0 {
		t.Errorf("hub stats %+v, want %d published, none dropped or disconnected", st, run.published)
	}
	for _, p := range hs.failures() {
		t.Errorf("server: %s", p)
	}
}

// hubRun is the state of TestHubDeflate.
type hubRun struct {
	hs        *hubServer
	peers     []*hubPeer             // by index in hubPeers
	known     map[string]*hubMessage // every message sent, by SHA-256
	published int
}

// round runs round r: each of senders (indices in hubPeers) sends its
// hubMessages, all at once, and each of active must receive its echoes and
// every message of the round, in one order at every peer.
func (run *hubRun) round(t *testing.T, r int, active, senders []int) {
	t.Helper()
	what := fmt.Sprintf("round %d", r)
	sent := make(map[int][]*hubMessage, len(senders))
	var round []*hubMessage
	for _, i := range senders {
		sent[i] = hubMessages(i, r)
		round = append(round, sent[i]...)
	}
	for _, m := range round {
		run.known[m.sum] = m
	}
	run.published += len(round)
	errs := make(chan error, len(senders))
	for _, i := range senders {
		go func() {
			p := run.peers[i]
			for _, m := range sent[i] {
				if err := p.send(m); err != nil {
					errs <- fmt.Errorf("%s: send %s: %w", p.name, m.name, err)
					return
				}
			}
			errs <- nil
		}()
	}
	var order []*hubMessage // the publish order, as the first peer saw it
	for _, i := range active {
		p := run.peers[i]
		got := p.receive(t, len(round)+len(sent[i]), what)
		seen, ok := checkRound(t, p, what, got, run.known, sent, sent[i], round)
		switch {
		case !ok:
		case i == active[0]:
			order = seen
		case order != nil && !slices.Equal(seen, order):
			t.Errorf("%s, %s: messages in the order %s; %s had %s", p.name, what, names(seen), run.peers[active[0]].name, names(order))
		}
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// leave closes the peers with 1000, one after another, and waits until
// their sessions have ended: then the hub must have stay subscribers.
func (run *hubRun) leave(t *testing.T, peers []int, stay int) {
	t.Helper()
	for _, i := range peers {
		p := run.peers[i]
		if err := p.close(); err != nil {
			t.Errorf("%s: close: %v", p.name, err)
		}
		e := p.next(t, "the close")
		if e.Event != "close" || e.Code != int(frame.CloseNormal) {
			t.Errorf("%s: %s after its close, want the server's close with %d", p.name, p.ending(t, e), frame.CloseNormal)
		}
	}
	deadline := time.After(stepTimeout)
	for range peers {
		select {
		case end := <-run.hs.ended:
			if end.reason.Code != wskit.CloseNormal || end.err != nil {
				t.Errorf("a session ended with %d %q, Err %v; want %d and no error", end.reason.Code, end.reason.Reason, end.err, wskit.CloseNormal)
			}
		case <-deadline:
			t.Fatalf("not every session ended within %v of its peer's close", stepTimeout)
		}
	}
	// A session leaves its hubs before its OnClose runs or Done is closed.
	if n := run.hs.hub.Subscribers(); n != stay {
		t.Errorf("%d subscribers once %d sessions ended, want %d", n, len(peers), stay)
	}
}

// hubGreeting is what the server sends a session once it has subscribed:
// 1000 bytes of hubText. The connection compresses it with its own context,
// which then holds the sentences that every later message repeats: an echo
// compressed with that context after shared messages went by would refer to
// the wrong bytes, unless the context was dropped.
var hubGreeting = string(hubText(rand.New(rand.NewPCG(0, 0)), "subscribed: ", 1000))

// hubSessionEnd is how a session of the server under test ended.
type hubSessionEnd struct {
	reason wskit.CloseReason
	err    error
}

// hubServer is a running server under test with a hub on /hub.
type hubServer struct {
	Addr  string // 127.0.0.1:PORT
	hub   *wskit.Hub
	ended chan hubSessionEnd // a value when a session has ended

	mu         sync.Mutex
	extensions []string
	problems   []string
}

// newHubServer starts a server on v's engine with permessage-deflate (the
// default PerMessageDeflate: context takeover both ways, 15-bit windows)
// and serves /hub: a session subscribes to the hub and is greeted with
// hubGreeting; each message it sends is sent back to it with Send, then
// published. With v.events the route is Events callbacks on the loop, else
// a default session handler. The hub's OverflowCloseTryAgain never makes
// Publish wait, which an Events callback on the loop must not do; a peer
// closed by it would fail the test with 1013.
func newHubServer(t *testing.T, v serverVariant) *hubServer {
	t.Helper()
	opts := wskit.DefaultOptions()
	opts.Engine = v.engine
	opts.MaxMessageSize = maxMessageSize
	opts.MaxFrameSize = maxMessageSize
	opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := wskit.NewHub(wskit.HubOptions{Overflow: wskit.OverflowCloseTryAgain})
	if err != nil {
		t.Fatal(err)
	}
	hs := &hubServer{hub: hub, ended: make(chan hubSessionEnd, 4*len(hubPeers))}
	open := func(s *wskit.Session) {
		hs.mu.Lock()
		hs.extensions = append(hs.extensions, s.Extensions())
		hs.mu.Unlock()
		if s.Engine() != v.engine {
			hs.fail("a session runs on %v, want %v", s.Engine(), v.engine)
		}
		if err := hub.Subscribe(s); err != nil {
			hs.fail("Subscribe: %v", err)
			return
		}
		if err := s.SendText(hubGreeting); err != nil {
			hs.fail("greet: %v", err)
		}
	}
	relay := func(s *wskit.Session, m wskit.Message) {
		if err := s.Send(m.Type, m.Payload); err != nil {
			hs.fail("echo %s: %v", describe(m.Payload), err)
		}
		if err := hub.Publish(context.Background(), m.Type, m.Payload); err != nil {
			hs.fail("Publish %s: %v", describe(m.Payload), err)
		}
	}
	end := func(s *wskit.Session) {
		r, _ := s.CloseReason()
		hs.ended <- hubSessionEnd{r, s.Err()}
	}
	mux := http.NewServeMux()
	if v.events {
		mux.Handle("/hub", srv.WebSocketEvents(wskit.Events{
			OnOpen:    open,
			OnMessage: relay,
			OnClose:   func(s *wskit.Session, _ wskit.CloseReason) { end(s) },
		}))
	} else {
		mux.Handle("/hub", srv.WebSocket(func(s *wskit.Session) {
			open(s)
			for m := range s.Messages() {
				relay(s, m)
			}
			<-s.Done()
			end(s)
		}))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, mux) }()
	t.Cleanup(func() {
		hub.Close()
		shutdown(t, v.name, srv, served)
	})
	hs.Addr = ln.Addr().String()
	return hs
}

// fail records a problem of a handler, which may run after the test.
func (hs *hubServer) fail(format string, args ...any) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.problems = append(hs.problems, fmt.Sprintf(format, args...))
}

func (hs *hubServer) failures() []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return slices.Clone(hs.problems)
}

func (hs *hubServer) sessionExtensions() []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return slices.Clone(hs.extensions)
}

// hubPeerConfig is a peer of TestHubDeflate and the answer the server gives
// its offer ("" when it offers nothing, so that nothing is compressed).
type hubPeerConfig struct {
	name    string
	client  string                    // "ws", "coder" or "gorilla"
	ws      string                    // ws's perMessageDeflate, JSON; "" for its default
	coder   websocket.CompressionMode // for coder
	deflate bool                      // for gorilla: EnableCompression
	want    string
}

var hubPeers = []hubPeerConfig{
	// ws offers client_max_window_bits, which the server answers with 13.
	{name: "ws-default", client: "ws", want: "permessage-deflate; client_max_window_bits=13"},
	{name: "ws-server-no-context-takeover", client: "ws", ws: `{"serverNoContextTakeover":true}`,
		want: "permessage-deflate; server_no_context_takeover; client_max_window_bits=13"},
	{name: "ws-client-no-context-takeover", client: "ws", ws: `{"clientNoContextTakeover":true}`,
		want: "permessage-deflate; client_no_context_takeover"},
	// A 10-bit window makes a sharing of its own.
	{name: "ws-server-max-window-bits-10", client: "ws", ws: `{"serverMaxWindowBits":10}`,
		want: "permessage-deflate; server_max_window_bits=10; client_max_window_bits=13"},
	// coder cannot bound its window: it compresses each message on its own.
	{name: "coder-context-takeover", client: "coder", coder: websocket.CompressionContextTakeover,
		want: "permessage-deflate; client_no_context_takeover"},
	{name: "coder-no-context-takeover", client: "coder", coder: websocket.CompressionNoContextTakeover,
		want: "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	{name: "gorilla-compression", client: "gorilla", deflate: true, want: gorillaDeflateAnswer},
	{name: "gorilla-plain", client: "gorilla"},
}

// hubRounds lists, by index in hubPeers, who sends in each round: one peer
// alone, a few at a time, and all at once. Every peer sends in two rounds
// or more, and receives others' messages between its own.
var hubRounds = [][]int{{0}, {4, 6}, {1, 3, 7}, {0, 2, 5}, {0, 1, 2, 3, 4, 5, 6, 7}, {5, 3, 0}, {7, 6, 1, 4, 2}}

// hubKind is how a message must travel to a peer with permessage-deflate.
type hubKind uint8

const (
	compressible   hubKind = iota // text: with RSV1, in under half its size
	incompressible                // random bytes: as they are, without RSV1
	poor                          // random runes: either way, no bigger
)

// hubMessage is a message of TestHubDeflate.
type hubMessage struct {
	name   string // for failures: who sent what in which round
	sender int    // index in hubPeers; -1 for the greeting
	binary bool
	data   []byte
	kind   hubKind
	sum    string // SHA-256 of data, in hex
}

func newHubMessage(what string, sender, round int, binary bool, data []byte, kind hubKind) *hubMessage {
	name := what
	if sender >= 0 {
		name = fmt.Sprintf("%s's %s of round %d", hubPeers[sender].name, what, round)
	}
	sum := sha256.Sum256(data)
	return &hubMessage{name: name, sender: sender, binary: binary, data: data, kind: kind, sum: hex.EncodeToString(sum[:])}
}

// hubMessages returns what peer sends in round, in order: texts of 1–20 KiB
// that compress, text as a binary message, random bytes and random runes.
// The sizes, the sentences and the numbers among them change with the peer
// and the round, so that an echo compressed with a stale context would
// refer to bytes the peer does not have where the server thinks they are.
func hubMessages(peer, round int) []*hubMessage {
	rng := rand.New(rand.NewPCG(uint64(peer)+1, uint64(round)+1))
	size := func(lo, hi int) int { return lo + rng.IntN(hi-lo+1) }
	tag := fmt.Sprintf("[%s, round %d] ", hubPeers[peer].name, round)
	random := make([]byte, size(1<<10, 8<<10))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var runes []byte
	for n := size(1<<10, 4<<10); len(runes) < n; {
		// U+0800–U+D7FF: three bytes each, 16 bits of chance.
		runes = utf8.AppendRune(runes, rune(0x800+rng.IntN(0xd800-0x800)))
	}
	ms := []*hubMessage{
		newHubMessage("text", peer, round, false, hubText(rng, tag+"text: ", size(2<<10, 20<<10)), compressible),
		newHubMessage("binary text", peer, round, true, hubText(rng, tag+"binary: ", size(1<<10, 12<<10)), compressible),
		newHubMessage("random bytes", peer, round, true, random, incompressible),
		newHubMessage("short text", peer, round, false, hubText(rng, tag+"short: ", size(1<<10, 3<<10)), compressible),
		newHubMessage("random runes", peer, round, false, runes, poor),
	}
	k := (peer + round) % len(ms)
	return append(ms[k:], ms[:k]...)
}

// hubSentences make up hubText: short enough that a 10-bit window holds
// them all, so that even a message compressed on its own shrinks to a
// third or less.
var hubSentences = []string{
	"A hub compresses each message once for every peer with the same parameters.",
	"A peer that keeps its window must be sent what it can inflate.",
	"Naïve café crème, Ελληνικά, 日本語 — text in more than one script.",
	"Every broadcast goes out in the order it was published.",
	"An echo follows the connection's own compression context.",
	"A stale context corrupts whatever comes after it.",
}

// hubText returns about n bytes of valid UTF-8: tag, then sentences from
// hubSentences with numbers among them.
func hubText(rng *rand.Rand, tag string, n int) []byte {
	b := append(make([]byte, 0, n+100), tag...)
	for len(b) < n {
		b = append(b, hubSentences[rng.IntN(len(hubSentences))]...)
		if rng.IntN(3) == 0 {
			b = fmt.Appendf(b, " (%d)", rng.IntN(100000))
		}
		b = append(b, ' ')
	}
	b = b[:n]
	for !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return b
}

// peerEvent is what a peer saw: a line of node/hub.mjs, or the same made by
// the Go peers' readers.
type peerEvent struct {
	Event  string `json:"event"` // open (ws only), message, error, close
	Binary bool   `json:"binary"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	Code   int    `json:"code"` // of the server's close frame; -1 without one
	Reason string `json:"reason"`
	Error  string `json:"error"`

	WS               string         `json:"ws"`
	Node             string         `json:"node"`
	ExtensionsHeader *string        `json:"extensionsHeader"`
	DeflateParams    map[string]any `json:"deflateParams"`
}

func (e peerEvent) String() string {
	switch e.Event {
	case "message":
		kind := "text"
		if e.Binary {
			kind = "binary"
		}
		return fmt.Sprintf("a %s message of %d bytes, SHA-256 %.16s", kind, e.Size, e.SHA256)
	case "close":
		s := fmt.Sprintf("close %d %q", e.Code, e.Reason)
		if e.Error != "" {
			s += " (" + e.Error + ")"
		}
		return s
	}
	return fmt.Sprintf("%s %q", e.Event, e.Error)
}

// hubReceived is a message a peer received, and whether it was its echo.
type hubReceived struct {
	m    *hubMessage
	echo bool
}

// hubPeer is a connected peer of TestHubDeflate.
type hubPeer struct {
	hubPeerConfig
	answer string // the Sec-WebSocket-Extensions answer it got
	wire   *wireProxy
	events chan peerEvent
	send   func(*hubMessage) error
	close  func() error // sends a close with 1000
	got    []hubReceived
}

// dialHubPeer connects a peer to hs through a wireProxy of its own.
func dialHubPeer(t *testing.T, node string, hs *hubServer, c hubPeerConfig) *hubPeer {
	t.Helper()
	p := &hubPeer{hubPeerConfig: c, events: make(chan peerEvent, 4096)}
	p.wire = startWireProxy(t, hs.Addr)
	url := "ws://" + p.wire.Addr + "/hub"
	switch c.client {
	case "ws":
		p.dialNode(t, node, url)
	case "coder":
		ctx := coderContext(t)
		dctx, cancel := context.WithTimeout(ctx, stepTimeout)
		defer cancel()
		conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{CompressionMode: c.coder})
		if err != nil {
			t.Fatalf("%s: dial: %v", c.name, err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		conn.SetReadLimit(2 * maxMessageSize)
		p.answer = resp.Header.Get("Sec-WebSocket-Extensions")
		go readInto(p.events, func() (bool, []byte, error) {
			typ, b, err := conn.Read(ctx)
			return typ == websocket.MessageBinary, b, err
		}, func(err error) (int, string) {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return int(ce.Code), ce.Reason
			}
			return -1, ""
		})
		p.send = func(m *hubMessage) error {
			typ := websocket.MessageText
			if m.binary {
				typ = websocket.MessageBinary
			}
			return conn.Write(ctx, typ, m.data)
		}
		p.close = func() error { return conn.Close(websocket.StatusNormalClosure, "done") }
	case "gorilla":
		d := gorilla.Dialer{HandshakeTimeout: stepTimeout, EnableCompression: c.deflate}
		conn, resp, err := d.Dial(url, nil)
		if err != nil {
			t.Fatalf("%s: dial: %v", c.name, err)
		}
		t.Cleanup(func() { conn.Close() })
		p.answer = resp.Header.Get("Sec-WebSocket-Extensions")
		go readInto(p.events, func() (bool, []byte, error) {
			typ, b, err := conn.ReadMessage()
			return typ == gorilla.BinaryMessage, b, err
		}, func(err error) (int, string) {
			var ce *gorilla.CloseError
			if errors.As(err, &ce) && ce.Code != gorilla.CloseAbnormalClosure {
				return ce.Code, ce.Text
			}
			return -1, ""
		})
		p.send = func(m *hubMessage) error {
			typ := gorilla.TextMessage
			if m.binary {
				typ = gorilla.BinaryMessage
			}
			return conn.WriteMessage(typ, m.data)
		}
		p.close = func() error {
			return conn.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "done"))
		}
	default:
		t.Fatalf("unknown client %q", c.client)
	}
	t.Logf("%s: the server answered %q", c.name, p.answer)
	return p
}

// readInto reports each message read to events as node/hub.mjs does, then
// the error that ended reading as a close; closeOf returns the code and
// reason of the server's close frame in it (-1 without one).
func readInto(events chan<- peerEvent, read func() (bool, []byte, error), closeOf func(error) (int, string)) {
	for {
		binary, p, err := read()
		if err != nil {
			code, reason := closeOf(err)
			events <- peerEvent{Event: "close", Code: code, Reason: reason, Error: err.Error()}
			return
		}
		sum := sha256.Sum256(p)
		events <- peerEvent{Event: "message", Binary: binary, Size: len(p), SHA256: hex.EncodeToString(sum[:])}
	}
}

// dialNode runs node/hub.mjs with p's options and waits for its open.
func (p *hubPeer) dialNode(t *testing.T, node, url string) {
	t.Helper()
	args := []string{"hub.mjs"}
	if p.ws != "" {
		args = append(args, "--deflate", p.ws)
	}
	cmd := exec.Command(node, append(args, url)...)
	cmd.Dir = "node"
	var mu sync.Mutex
	var stderr bytes.Buffer
	cmd.Stderr = syncWriter{&mu, &stderr}
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start node hub.mjs: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e peerEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = peerEvent{Event: "error", Error: "unparsed: " + sc.Text()}
			}
			p.events <- e
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // it closes with 1000 unless it has closed
		select {
		case <-done:
		case <-time.After(stepTimeout):
			cmd.Process.Kill()
			<-done
		}
		mu.Lock()
		defer mu.Unlock()
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s: node hub.mjs: %v\nstderr:\n%s", p.name, err, stderr.Bytes())
		} else if stderr.Len() > 0 {
			t.Logf("%s: node hub.mjs's stderr:\n%s", p.name, stderr.Bytes())
		}
	})
	var write sync.Mutex
	writeLine := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		write.Lock()
		defer write.Unlock()
		_, err = stdin.Write(append(b, '\n'))
		return err
	}
	p.send = func(m *hubMessage) error {
		return writeLine(map[string]any{"binary": m.binary, "base64": base64.StdEncoding.EncodeToString(m.data)})
	}
	p.close = func() error { return writeLine(map[string]any{"close": 1000, "reason": "done"}) }
	e := p.next(t, "the open")
	if e.Event != "open" {
		t.Fatalf("%s: %s, want the open", p.name, p.ending(t, e))
	}
	if e.ExtensionsHeader != nil {
		p.answer = *e.ExtensionsHeader
	}
	t.Logf("%s: ws %s on node %s agreed to %v", p.name, e.WS, e.Node, e.DeflateParams)
}

// next returns p's next event, waiting for it for at most stepTimeout.
func (p *hubPeer) next(t *testing.T, what string) peerEvent {
	t.Helper()
	select {
	case e := <-p.events:
		return e
	case <-time.After(stepTimeout):
		t.Fatalf("%s: no %s within %v", p.name, what, stepTimeout)
	}
	panic("unreachable")
}

// ending describes e, an event other than a message, with the events that
// follow it until the close: what a peer said about a message it refused.
func (p *hubPeer) ending(t *testing.T, e peerEvent) string {
	t.Helper()
	s := e.String()
	for e.Event != "close" {
		select {
		case e = <-p.events:
			s += ", then " + e.String()
		case <-time.After(stepTimeout):
			return s + ", then nothing"
		}
	}
	return s
}

// receive returns the next n messages p receives, or fails the test with
// how its connection ended instead.
func (p *hubPeer) receive(t *testing.T, n int, what string) []peerEvent {
	t.Helper()
	got := make([]peerEvent, 0, n)
	for len(got) < n {
		e := p.next(t, fmt.Sprintf("message %d of %d (%s)", len(got)+1, n, what))
		if e.Event != "message" {
			t.Fatalf("%s, %s: after %d of %d messages: %s", p.name, what, len(got), n, p.ending(t, e))
		}
		got = append(got, e)
	}
	return got
}

// checkRound checks the messages p received in a round: each a message
// sent, with its type; p's own first as echoes, in the order p sent them,
// and every message of the round once more, each sender's in its order. It
// records them in p.got and returns the order of the round's messages;
// false after a message that was never sent, which leaves nothing to
// compare.
func checkRound(t *testing.T, p *hubPeer, what string, got []peerEvent, known map[string]*hubMessage, sent map[int][]*hubMessage, own, round []*hubMessage) ([]*hubMessage, bool) {
	t.Helper()
	index := map[int]int{} // sender → how many of its messages came
	echoes := 0
	var order []*hubMessage
	seen := make(map[*hubMessage]bool)
	for i, e := range got {
		m := known[e.SHA256]
		switch {
		case m == nil:
			next := "none"
			if echoes < len(own) {
				next = own[echoes].name
			}
			t.Errorf("%s, %s: message %d of %d is not one sent: %s (its echo still to come: %s; the messages before it: %s)",
				p.name, what, i, len(got), e, next, names(order))
			return nil, false
		case m.binary != e.Binary || len(m.data) != e.Size:
			t.Errorf("%s, %s: message %d is %s, want %s (binary %v, %d bytes)", p.name, what, i, e, m.name, m.binary, len(m.data))
		}
		if echoes < len(own) && m == own[echoes] && !seen[m] {
			// The echo comes before the broadcast of the same bytes.
			echoes++
			p.got = append(p.got, hubReceived{m, true})
			continue
		}
		p.got = append(p.got, hubReceived{m, false})
		switch {
		case seen[m]:
			t.Errorf("%s, %s: %s came twice more than its echo", p.name, what, m.name)
		case m.sender < 0 || !slices.Contains(sent[m.sender], m):
			t.Errorf("%s, %s: %s, which is not of this round", p.name, what, m.name)
		case sent[m.sender][index[m.sender]] != m:
			t.Errorf("%s, %s: %s came as its sender's message %d, want %s", p.name, what, m.name, index[m.sender], sent[m.sender][index[m.sender]].name)
		}
		seen[m] = true
		index[m.sender]++
		order = append(order, m)
	}
	if echoes != len(own) {
		t.Errorf("%s, %s: %d echoes in order of the %d messages it sent", p.name, what, echoes, len(own))
	}
	if len(order) != len(round) {
		t.Errorf("%s, %s: %d broadcasts, want %d", p.name, what, len(order), len(round))
	}
	return order, true
}

// checkWire checks how the messages p received went on the wire, in the
// order the server's frames passed its wireProxy.
func checkWire(t *testing.T, p *hubPeer) {
	t.Helper()
	wire := p.wire.messages()
	if len(wire) != len(p.got) {
		t.Errorf("%s: %d data messages passed on the wire, the peer received %d", p.name, len(wire), len(p.got))
		return
	}
	compressed := p.want != ""
	var totals [2]struct{ n, size, wire, rsv1 int } // broadcasts, echoes
	for i, g := range p.got {
		w, m := wire[i], g.m
		size := len(m.data)
		kind := "broadcast"
		if g.echo {
			kind = "echo"
		}
		if (w.op == frame.OpBinary) != m.binary {
			t.Errorf("%s: the %s of %s went as opcode %v", p.name, kind, m.name, w.op)
		}
		bad := false
		switch {
		case !compressed:
			bad = w.rsv1 || w.size != size
		case m.kind == compressible:
			bad = !w.rsv1 || 2*w.size > size
		case m.kind == incompressible:
			bad = w.rsv1 || w.size != size
		default:
			bad = w.size > size
		}
		if bad {
			t.Errorf("%s: the %s of %s (%d bytes) went as %d bytes, RSV1 %v", p.name, kind, m.name, size, w.size, w.rsv1)
		}
		tot := &totals[0]
		if g.echo {
			tot = &totals[1]
		}
		tot.n++
		tot.size += size
		tot.wire += w.size
		if w.rsv1 {
			tot.rsv1++
		}
	}
	for i, what := range []string{"broadcasts", "echoes"} {
		tot := totals[i]
		t.Logf("%s: %d %s (%d with RSV1): %d bytes in %d on the wire (%.0f%%)",
			p.name, tot.n, what, tot.rsv1, tot.size, tot.wire, 100*float64(tot.wire)/float64(max(tot.size, 1)))
	}
}

// wireProxy reads the server's frames on their way to one peer, through a
// countingProxy, after the HTTP response: for each data message, its
// opcode, whether its first frame had RSV1 (compressed), and its payload
// bytes on the wire.
type wireProxy struct {
	Addr string

	mu   sync.Mutex
	in   []byte // bytes not yet parsed
	head bool   // the HTTP response has passed
	cur  *wireMessageInfo
	msgs []wireMessageInfo
}

type wireMessageInfo struct {
	op   frame.Opcode
	rsv1 bool
	size int
}

// startWireProxy starts a wireProxy to target (host:port) for one peer.
func startWireProxy(t *testing.T, target string) *wireProxy {
	t.Helper()
	w := &wireProxy{}
	w.Addr = startTapProxy(t, target, w).Addr
	return w
}

// messages returns the data messages that passed so far.
func (w *wireProxy) messages() []wireMessageInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// Write takes the bytes that pass to the peer.
func (w *wireProxy) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.in = append(w.in, b...)
	if !w.head {
		i := bytes.Index(w.in, []byte("\r\n\r\n"))
		if i < 0 {
			return len(b), nil
		}
		w.in = w.in[i+4:]
		w.head = true
	}
	n := 0
	for {
		used := w.parse(w.in[n:])
		if used == 0 {
			break
		}
		n += used
	}
	w.in = append(w.in[:0], w.in[n:]...)
	return len(b), nil
}

// parse records the frame at the start of b and returns its length; 0 if b
// does not hold all of it yet.
func (w *wireProxy) parse(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	h, size := 2, uint64(b[1]&0x7f)
	switch size {
	case 126:
		if len(b) < 4 {
			return 0
		}
		h, size = 4, uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if len(b) < 10 {
			return 0
		}
		h, size = 10, binary.BigEndian.Uint64(b[2:])
	}
	if b[1]&0x80 != 0 {
		h += 4 // a mask, which a server must not send; the peer will say so
	}
	if uint64(len(b)-h) < size {
		return 0
	}
	fin, op := b[0]&0x80 != 0, frame.Opcode(b[0]&0x0f)
	switch {
	case op.IsControl():
		return h + int(size)
	case op == frame.OpContinuation && w.cur != nil:
		w.cur.size += int(size)
	default:
		w.cur = &wireMessageInfo{op: op, rsv1: b[0]&0x40 != 0, size: int(size)}
	}
	if fin {
		w.msgs = append(w.msgs, *w.cur)
		w.cur = nil
	}
	return h + int(size)
}

func names(ms []*hubMessage) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.name
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
