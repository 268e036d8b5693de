package fanout

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/poller"
)

// The handshake uses RFC 6455's sample key, whose accept value is known
// (§1.3), so that nothing is computed per connection.
const (
	handshakeKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	handshakeAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// ClientMain is the subscriber process: it opens -n connections to -addr,
// upgrades them on -path, prints "ready" and then reads them all from one
// epoll loop, which parses frame headers and checks every message (stream)
// without copying payloads. Commands come on stdin, one a line:
//
//	wait T   print "ok" once every connection has received messages 0 to T-1
//	status   print "status" and the counts so far
//
// A broken rule prints "error" and the reason, and ends the process with
// status 1; the end of stdin ends it with 0, closing the connections.
func ClientMain(args []string) int {
	fs := flag.NewFlagSet("fanout-client", flag.ContinueOnError)
	addr := fs.String("addr", "", "server host:port")
	path := fs.String("path", Path, "path to upgrade on")
	n := fs.Int("n", 100, "connections")
	size := fs.Int("size", 64, "bytes of every message")
	par := fs.Int("parallel", 16, "handshakes in progress at once")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := runClient(*addr, *path, *n, *size, *par); err != nil {
		fmt.Fprintln(os.Stderr, "fanout client:", err)
		unix.Write(1, fmt.Appendf(nil, "error %s\n", bytes.ReplaceAll([]byte(err.Error()), []byte("\n"), []byte(" "))))
		return 1
	}
	return 0
}

// sub is one subscriber connection.
type sub struct {
	fd int
	stream
}

func runClient(addr, path string, n, size, par int) error {
	if size < MinSize {
		return fmt.Errorf("size %d is under %d", size, MinSize)
	}
	if err := poller.RaiseFileLimit(); err != nil {
		return err
	}
	subs, err := dialAll(addr, path, n, par)
	defer func() {
		for _, s := range subs {
			if s.fd > 0 {
				unix.Close(s.fd)
			}
		}
	}()
	if err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(ep)
	maxFD := 0
	for _, s := range subs {
		maxFD = max(maxFD, s.fd)
	}
	byFD := make([]int32, maxFD+1) // index in subs
	for i, s := range subs {
		byFD[s.fd] = int32(i)
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(s.fd)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			return err
		}
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, 0, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}); err != nil {
		return fmt.Errorf("watching stdin: %w", err)
	}

	var (
		events    = make([]unix.EpollEvent, 512)
		buf       = make([]byte, 64<<10)
		out       = make([]byte, 0, 256) // replies on stdout, pongs
		cmd       []byte                 // an unfinished command line
		delivered uint64                 // messages received, over all connections
		target    uint64                 // delivered awaited by a wait command
		waiting   bool
	)
	if err := writeAll(1, []byte("ready\n")); err != nil {
		return err
	}
	for {
		k, err := unix.EpollWait(ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:k] {
			if ev.Fd == 0 {
				m, err := unix.Read(0, buf)
				if err == unix.EAGAIN || err == unix.EINTR {
					continue
				}
				if err != nil || m == 0 {
					return nil // the end of stdin: done
				}
				cmd = append(cmd, buf[:m]...)
				for {
					line, rest, ok := bytes.Cut(cmd, []byte("\n"))
					if !ok {
						break
					}
					switch {
					case bytes.HasPrefix(line, []byte("wait ")):
						t, err := strconv.ParseUint(string(line[5:]), 10, 64)
						if err != nil {
							return fmt.Errorf("bad command %q", line)
						}
						target, waiting = t*uint64(n), true
					case bytes.Equal(line, []byte("status")):
						if err := writeAll(1, statusLine(out[:0], subs, delivered)); err != nil {
							return err
						}
					default:
						return fmt.Errorf("unknown command %q", line)
					}
					cmd = cmd[:copy(cmd, rest)]
				}
				continue
			}
			s := &subs[byFD[ev.Fd]]
			m, err := unix.Read(s.fd, buf)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("connection %d after %d messages: %w", byFD[ev.Fd], s.next, err)
			}
			if m == 0 {
				return fmt.Errorf("connection %d closed by the server after %d messages", byFD[ev.Fd], s.next)
			}
			got, err := s.feed(buf[:m], size)
			delivered += uint64(got)
			if err != nil {
				return fmt.Errorf("connection %d: %w", byFD[ev.Fd], err)
			}
			if p := s.pong(out[:0]); len(p) > 0 {
				if err := writeAll(s.fd, p); err != nil {
					return fmt.Errorf("connection %d: pong: %w", byFD[ev.Fd], err)
				}
			}
		}
		if waiting && delivered >= target {
			if delivered > target {
				return fmt.Errorf("%d messages delivered, more than the %d published", delivered, target)
			}
			waiting = false
			if err := writeAll(1, []byte("ok\n")); err != nil {
				return err
			}
		}
	}
}

// statusLine appends "status" and the counts of the subscribers.
func statusLine(dst []byte, subs []sub, delivered uint64) []byte {
	lo, hi := ^uint64(0), uint64(0)
	behind := 0
	for _, s := range subs {
		lo, hi = min(lo, s.next), max(hi, s.next)
	}
	for _, s := range subs {
		if s.next < hi {
			behind++
		}
	}
	return fmt.Appendf(dst, "status delivered=%d conns=%d fewest=%d most=%d behind=%d\n", delivered, len(subs), lo, hi, behind)
}

// writeAll writes p to fd, which may be non-blocking.
func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EAGAIN || err == unix.EINTR {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// dialAll opens n connections, par at a time, and upgrades them. The
// descriptors are duplicated out of the net.Conns, which are then closed,
// so that the Go runtime's poller no longer watches them.
func dialAll(addr, path string, n, par int) ([]sub, error) {
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + handshakeKey +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n")
	subs := make([]sub, n)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range min(par, n) {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := dialOne(&subs[i], addr, req, buf)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return subs, first
}

func dialOne(s *sub, addr string, req, buf []byte) error {
	nc, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := nc.Write(req); err != nil {
		return err
	}
	w := 0
	end := -1
	for end < 0 {
		if w == len(buf) {
			return errors.New("upgrade response too long")
		}
		m, err := nc.Read(buf[w:])
		w += m
		if end = bytes.Index(buf[:w], []byte("\r\n\r\n")); end < 0 && err != nil {
			return err
		}
	}
	resp := buf[:end+4]
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) || !bytes.Contains(resp, []byte(handshakeAccept)) {
		return fmt.Errorf("upgrade refused: %q", resp)
	}
	if end+4 != w {
		return errors.New("the server sent frames before the first publish")
	}
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	var derr error
	err = rc.Control(func(fd uintptr) { s.fd, derr = unix.Dup(int(fd)) })
	if err == nil {
		err = derr
	}
	if err == nil {
		unix.CloseOnExec(s.fd)
		err = unix.SetNonblock(s.fd, true)
	}
	return err
}
