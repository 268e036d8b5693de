package fanout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/wskit/wskit/bench/internal/harness"
)

// Subscribers is a subscriber process (ClientMain) seen from the parent.
// Its methods allocate nothing, so that they do not blur the allocations
// the benchmark counts in the parent, which holds the server.
type Subscribers struct {
	N   int // connections
	Pid int

	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *os.File
	buf   [512]byte // output of the process: buf[r:w] not yet consumed
	r, w  int
	cmdb  []byte
}

// StartSubscribers runs exe, a program that calls ClientMain with the
// arguments it is given when env is in its environment, to open n
// connections to addr that expect messages of size bytes, and waits until
// they are all upgraded.
func StartSubscribers(exe string, env []string, addr string, n, size int) (*Subscribers, error) {
	argv := []string{exe, "-addr", addr, "-n", strconv.Itoa(n), "-size", strconv.Itoa(size)}
	cmd, stdin, stdout, err := harness.StartPiped(argv, env)
	if err != nil {
		return nil, err
	}
	out, ok := stdout.(*os.File)
	if !ok {
		stdin.Close()
		cmd.Wait()
		return nil, fmt.Errorf("fanout: the pipe from the subscribers is a %T, not an *os.File", stdout)
	}
	s := &Subscribers{N: n, Pid: cmd.Process.Pid, cmd: cmd, stdin: stdin, out: out, cmdb: make([]byte, 0, 64)}
	line, err := s.readLine(time.Now().Add(5 * time.Minute))
	if err == nil && !bytes.Equal(line, []byte("ready")) {
		err = fmt.Errorf("fanout: the subscribers printed %q, want ready", line)
	}
	if err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Wait returns once every connection has received the messages numbered 0
// to published-1, in order, or the error the subscribers found. After
// timeout it fails with the subscribers' counts.
func (s *Subscribers) Wait(published uint64, timeout time.Duration) error {
	s.cmdb = strconv.AppendUint(append(s.cmdb[:0], "wait "...), published, 10)
	s.cmdb = append(s.cmdb, '\n')
	if _, err := s.stdin.Write(s.cmdb); err != nil {
		return fmt.Errorf("fanout: the subscribers: %w", err)
	}
	line, err := s.readLine(time.Now().Add(timeout))
	if err == nil {
		if bytes.Equal(line, []byte("ok")) {
			return nil
		}
		return s.lineError(line)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	// Ask where they are; a late "ok" may come first.
	if _, err := io.WriteString(s.stdin, "status\n"); err != nil {
		return fmt.Errorf("fanout: the subscribers: %w", err)
	}
	for {
		line, err := s.readLine(time.Now().Add(10 * time.Second))
		if err != nil {
			return fmt.Errorf("fanout: the subscribers had not received message %d on each connection after %v, and do not answer: %w", published-1, timeout, err)
		}
		if bytes.HasPrefix(line, []byte("status ")) {
			return fmt.Errorf("fanout: the subscribers had not received message %d on each connection after %v: %s", published-1, timeout, line)
		}
		if !bytes.Equal(line, []byte("ok")) {
			return s.lineError(line)
		}
	}
}

func (s *Subscribers) lineError(line []byte) error {
	if msg, ok := bytes.CutPrefix(line, []byte("error ")); ok {
		return fmt.Errorf("fanout: the subscribers: %s", msg)
	}
	return fmt.Errorf("fanout: the subscribers printed %q", line)
}

// readLine returns the next line the process prints, without its newline,
// valid until the next call.
func (s *Subscribers) readLine(deadline time.Time) ([]byte, error) {
	if err := s.out.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	for {
		if i := bytes.IndexByte(s.buf[s.r:s.w], '\n'); i >= 0 {
			line := s.buf[s.r : s.r+i]
			s.r += i + 1
			return line, nil
		}
		if s.r > 0 {
			s.w = copy(s.buf[:], s.buf[s.r:s.w])
			s.r = 0
		}
		if s.w == len(s.buf) {
			return nil, fmt.Errorf("fanout: the subscribers printed a line longer than %d bytes", len(s.buf))
		}
		n, err := s.out.Read(s.buf[s.w:])
		s.w += n
		if err != nil && n == 0 {
			if err == io.EOF {
				err = errors.New("fanout: the subscriber process ended")
			}
			return nil, err
		}
	}
}

// CPU returns the process's user and system CPU time so far.
func (s *Subscribers) CPU() (time.Duration, error) { return harness.CPUTime(s.Pid) }

// Stop closes the process's stdin, which ends it and closes its
// connections, and waits for it; after 10 s it is killed.
func (s *Subscribers) Stop() error {
	s.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
		return fmt.Errorf("fanout: subscriber process %d killed after 10s", s.Pid)
	}
}
