package wskit

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/wskit/wskit/internal/race"
)

// TestIdleMemoryPerConnection opens sessions from clients that are bare
// sockets (they hold nothing on the Go heap), lets them go idle, and
// checks what the server keeps for each: its live heap after GC and its
// goroutines. An Events session on the poll engine has no goroutine; a
// default session has one, its handler's, waiting in Receive.
func TestIdleMemoryPerConnection(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector's shadow memory blurs the heap")
	}
	n := 800
	if testing.Short() {
		n = 200
	}
	for _, tc := range []struct {
		engine     Engine
		path       string
		heap       int // bytes per connection, at most
		goroutines int // per connection
	}{
		{EnginePoll, "/events", 640, 0},
		{EnginePoll, "/echo", 3100, 1},
		{EngineStd, "/events", 3900, 1},
		{EngineStd, "/echo", 3600, 1},
	} {
		t.Run(fmt.Sprintf("%v%s", tc.engine, tc.path), func(t *testing.T) {
			opts := ptOptions()
			opts.Engine = tc.engine
			srv, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
			head := []byte(ptHead(addr, tc.path))
			// The first quarter grows what the server sizes once (its
			// tables of connections); the rest is measured.
			var fds []int // closed at the end, not one Cleanup each: it allocates
			t.Cleanup(func() {
				for _, fd := range fds {
					syscall.Close(fd)
				}
			})
			open := func(k int) {
				want := srv.Sessions() + k
				for range k {
					fds = append(fds, socketUpgrade(t, addr, head))
				}
				for deadline := time.Now().Add(ptWait); srv.Sessions() < want && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
				}
				if got := srv.Sessions(); got != want {
					t.Fatalf("%d sessions, want %d", got, want)
				}
			}
			open(n / 4)
			heap0, g0 := idleHeap()
			m := n - n/4
			open(m)
			heap1, g1 := idleHeap()
			perConn := float64(int64(heap1)-int64(heap0)) / float64(m)
			t.Logf("%.0f bytes of heap and %.2f goroutines per connection", perConn, float64(g1-g0)/float64(m))
			if perConn > float64(tc.heap) {
				t.Errorf("%.0f bytes of heap per idle connection, more than %d", perConn, tc.heap)
			}
			// Goroutines of handshakes and timers may be passing through
			// either count: allow 2%.
			if want := tc.goroutines * m; g1-g0 < want-m/50 || g1-g0 > want+m/50 {
				t.Errorf("%d goroutines more for %d idle connections, want %d", g1-g0, m, want)
			}
		})
	}
}

// idleHeap returns the live heap after GC (the pools' victim caches
// emptied too) and the number of goroutines.
func idleHeap() (uint64, int) {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

// socketUpgrade opens a connection to addr, sends head and reads the 101,
// and returns the connection as a bare descriptor, which holds nothing on
// the Go heap; the caller closes it.
func socketUpgrade(t testing.TB, addr string, head []byte) int {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ptWait)
	if err != nil {
		t.Fatal(err)
	}
	f, err := nc.(*net.TCPConn).File() // a blocking copy of the descriptor
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for len(head) > 0 && err == nil {
		var n int
		if n, err = syscall.Write(fd, head); err == nil {
			head = head[n:]
		}
		if err == syscall.EINTR {
			err = nil
		}
	}
	var buf [512]byte
	n := 0
	for err == nil && n < 12 {
		var k int
		k, err = syscall.Read(fd, buf[n:])
		switch {
		case err == syscall.EINTR:
			err = nil
		case err == nil && k == 0:
			err = io.ErrUnexpectedEOF
		case err == nil:
			n += k
		}
	}
	if err != nil || string(buf[9:12]) != "101" {
		syscall.Close(fd)
		t.Fatalf("upgrade: %q, %v", buf[:n], err)
	}
	return fd
}
