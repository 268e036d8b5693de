//go:build linux

package poller

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/internal/wstest"
)

// TestAcceptBackoff runs a server whose process runs out of descriptors:
// accept fails with EMFILE, which must be logged and waited out, not spun
// on, and accepting must resume once descriptors are free again.
func TestAcceptBackoff(t *testing.T) {
	if os.Getenv("POLLER_EMFILE_CHILD") != "" {
		emfileChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptBackoff$")
	cmd.Env = append(os.Environ(), "POLLER_EMFILE_CHILD=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr wstest.SyncBuffer // the child's log, written as it runs
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	addr := strings.TrimSpace(line)
	const n = 8
	conns := make([]net.Conn, n)
	for i := range conns {
		if conns[i], err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	echoes := func(c net.Conn, wait time.Duration) bool {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte("x")); err != nil {
			return false
		}
		var b [1]byte
		_, err := io.ReadFull(c, b[:])
		return err == nil
	}
	served := 0
	for _, c := range conns {
		if echoes(c, 300*time.Millisecond) {
			served++
		}
	}
	if served == 0 || 2*served > n {
		t.Fatalf("%d of %d connections served with 2 free descriptors", served, n)
	}
	time.Sleep(300 * time.Millisecond) // long enough to spin a lot
	for _, c := range conns[:served] {
		c.Close()
	}
	// As many descriptors came free as connections were served.
	for i, c := range conns[served:min(2*served, n)] {
		if !echoes(c, 5*time.Second) {
			t.Fatalf("connection %d was not served after descriptors came free (%d served first)\n%s", served+i, served, stderr.String())
		}
	}
	logged := strings.Count(stderr.String(), "accept failed")
	if logged == 0 || logged > 40 {
		t.Errorf("accept failure logged %d times, want a few (backing off):\n%s", logged, stderr.String())
	}
	if !strings.Contains(stderr.String(), "too many open files") {
		t.Errorf("the log does not name the error:\n%s", stderr.String())
	}
}

// emfileChild serves an echo with room for two more descriptors.
func emfileChild() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	e, err := New(Config{Loops: 1, Logger: log}, &echoHandler{})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go e.Serve(ln)
	time.Sleep(100 * time.Millisecond) // the listener is watched (its duplicate is open)
	ents, _ := os.ReadDir("/proc/self/fd")
	lim := unix.Rlimit{Cur: uint64(len(ents) + 1), Max: uint64(len(ents) + 1)}
	lim.Max = lim.Cur + 1000
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	e.Close()
}

// TestPeerAddrString checks that the address string made without a
// net.Addr is net.Addr's own, in one allocation.
func TestPeerAddrString(t *testing.T) {
	v4 := peerAddr{family: 4, port: 43210}
	copy(v4.ip[:], []byte{127, 0, 0, 2})
	loop6 := peerAddr{family: 6, port: 1, ip: [16]byte{15: 1}}
	mapped := peerAddr{family: 6, port: 65535, ip: [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 168, 14: 1, 15: 9}}
	full := peerAddr{family: 6, port: 8080, ip: [16]byte{0x20, 0x01, 0x0d, 0xb8, 5: 0x02, 14: 0xab, 15: 0xcd}}
	for _, a := range []peerAddr{v4, loop6, mapped, full, {}} {
		want := a.addr().String()
		if got := a.String(); got != want {
			t.Errorf("%+v: %q, want %q", a, got, want)
		}
		if a.family == 0 {
			continue
		}
		if n := testing.AllocsPerRun(100, func() { _ = a.String() }); n != 1 {
			t.Errorf("%+v: %v allocations, want 1", a, n)
		}
	}
}
