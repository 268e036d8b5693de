package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/cli"
	"github.com/wskit/wskit/internal/wstest"
)

// The three terminals of docs/broadcast.md, in one process: three wskit-nats serve,
// each with an embedded nats-server routed to the others, chat together;
// a member that comes back with ?after= gets what it missed.
func TestThreeNodeChat(t *testing.T) {
	addrs := freeAddrs(t, 6) // clients' and routes' of each server
	routes := strings.Join(addrs[3:], ",")
	ctx, cancel := context.WithCancel(context.Background())
	var pages []string
	var exits []chan int
	logs := make([]wstest.SyncBuffer, 3)
	for i := range 3 {
		exit := make(chan int, 1)
		args := []string{"serve", "-addr", "127.0.0.1:0", "-nats-embedded", "-nats-listen", addrs[i],
			"-nats-cluster", addrs[3+i], "-nats-routes", routes}
		var f natsFlags
		go func() { exit <- cli.Run(ctx, args, nil, nil, &logs[i], f.extension()) }()
		exits = append(exits, exit)
	}
	// Each waits for most of the JetStream cluster to be up.
	for i := range 3 {
		pages = append(pages, awaitListening(t, &logs[i], exits[i]))
	}
	defer func() {
		if t.Failed() {
			for i := range logs {
				t.Logf("node %d's log:\n%s", i, logs[i].String())
			}
		}
		cancel()
		for i, exit := range exits {
			if code := <-exit; code != 0 {
				t.Errorf("node %d exited with %d", i, code)
			}
		}
	}()

	dial := func(node int, query string) *wskit.Session {
		t.Helper()
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		s, err := wskit.Dial(dctx, "ws://"+pages[node]+"/chat/lobby"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := s.Receive(dctx); err != nil || m.Text() != "You are connected to WebSocket!" {
			t.Fatalf("greeting: %q, %v", m.Payload, err)
		}
		return s
	}
	// recv returns the sequence and text of the next chat message.
	recv := func(s *wskit.Session, within time.Duration) (uint64, string, error) {
		rctx, rcancel := context.WithTimeout(context.Background(), within)
		defer rcancel()
		m, err := s.Receive(rctx)
		if err != nil {
			return 0, "", err
		}
		seq, text, _ := strings.Cut(m.Text(), " ")
		n, err := strconv.ParseUint(seq, 10, 64)
		return n, text, err
	}
	expect := func(s *wskit.Session, want string) uint64 {
		t.Helper()
		seq, text, err := recv(s, 10*time.Second)
		if err != nil || text != want {
			t.Fatalf("received %d %q, %v; want %q", seq, text, err, want)
		}
		return seq
	}
	// ready waits until the node of s follows the room: its own texts
	// come back. Then nothing else is waiting.
	ready := func(s *wskit.Session) {
		t.Helper()
		for i := 0; ; i++ {
			s.SendText("ready?")
			if _, _, err := recv(s, 200*time.Millisecond); err == nil {
				break
			}
			if i == 50 {
				t.Fatal("the node does not follow the room")
			}
		}
		for {
			if _, _, err := recv(s, 200*time.Millisecond); err != nil {
				return
			}
		}
	}
	a, b := dial(0, ""), dial(1, "")
	defer a.Close(wskit.CloseNormal, "")
	ready(a)
	ready(b)
	for {
		if _, _, err := recv(a, 200*time.Millisecond); err != nil {
			break // b's readiness texts
		}
	}
	a.SendText("hello from node 0")
	seq := expect(a, "hello from node 0")
	if got := expect(b, "hello from node 0"); got != seq {
		t.Fatalf("b received sequence %d, a %d", got, seq)
	}
	b.Close(wskit.CloseNormal, "")
	a.SendText("while b is away")
	expect(a, "while b is away")
	c := dial(2, fmt.Sprint("?after=", seq))
	defer c.Close(wskit.CloseNormal, "")
	expect(c, "while b is away")
	c.SendText("from node 2")
	expect(a, "from node 2")
	expect(c, "from node 2")
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// awaitListening returns the address a node listens on, from its log.
func awaitListening(t *testing.T, logs *wstest.SyncBuffer, exit <-chan int) string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-exit:
			t.Fatalf("wskit-nats serve exited with %d:\n%s", code, logs.String())
		default:
		}
	}
	t.Fatalf("wskit-nats serve did not listen:\n%s", logs.String())
	return ""
}

func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	return addrs
}
