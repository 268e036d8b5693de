package cli

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// terminal is a pseudo-terminal: the test types into its master side and
// reads the screen from it; wskit dial gets the slave side, a terminal.
type terminal struct {
	t      *testing.T
	master *os.File
	slave  *os.File
	screen syncBuffer // all that was written to the terminal
}

// openTerminal opens a pseudo-terminal with the terminal's defaults:
// canonical input, echo, and "\n" written as "\r\n".
func openTerminal(t *testing.T) *terminal {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n uint32
	var ierr error
	err = rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr == nil { // unlockpt
			n, ierr = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN) // ptsname
		}
	})
	if err == nil {
		err = ierr
	}
	if err != nil {
		m.Close()
		t.Fatalf("set up the pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open the pseudo-terminal's slave: %v", err)
	}
	term := &terminal{t: t, master: m, slave: s}
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&term.screen, m) // until the slave is closed: EIO
	}()
	t.Cleanup(func() {
		s.Close()
		select {
		case <-read:
		case <-time.After(5 * time.Second):
			t.Errorf("the terminal's screen was still read after its slave closed")
		}
		m.Close()
	})
	return term
}

// typeText types text on the terminal's keyboard.
func (term *terminal) typeText(text string) {
	term.t.Helper()
	if _, err := io.WriteString(term.master, text); err != nil {
		term.t.Fatalf("type %q: %v", text, err)
	}
}

// waitScreen waits until the screen, after its first skip bytes, holds
// want, and returns where want ends.
func (term *terminal) waitScreen(skip int, want string) int {
	term.t.Helper()
	end := -1
	deadline := time.Now().Add(5 * time.Second)
	for {
		screen := term.screen.String()
		if i := strings.Index(screen[skip:], want); i >= 0 {
			end = skip + i + len(want)
			return end
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("the screen lacks %q after byte %d:\n%q", want, skip, screen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runDialOn runs wskit dial with args, its stdin on the terminal, and its
// stdout and stderr on the terminal or as given (nil for the terminal).
func runDialOn(term *terminal, stdin io.Reader, stdout, stderr io.Writer, args ...string) chan int {
	if stdin == nil {
		stdin = term.slave
	}
	if stdout == nil {
		stdout = term.slave
	}
	if stderr == nil {
		stderr = term.slave
	}
	exit := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	term.t.Cleanup(cancel)
	go func() { exit <- runDial(ctx, args, stdin, stdout, stderr) }()
	return exit
}

func waitExit(t *testing.T, exit chan int, within time.Duration, screen *syncBuffer) int {
	t.Helper()
	select {
	case code := <-exit:
		return code
	case <-time.After(within):
		t.Fatalf("dial did not exit within %v; the screen:\n%q", within, screen.String())
		return -1
	}
}

// TestDialTerminal types on a terminal: a prompt asks for each line,
// received messages are marked "< " and put the prompt back, lines that
// start with "/" are commands, and /close ends the session with its code.
func TestDialTerminal(t *testing.T) {
	ts, _ := newTestServer(t)
	term := openTerminal(t)
	exit := runDialOn(term, nil, nil, nil, wsURL(ts, "/hello"))

	at := term.waitScreen(0, "connected to "+wsURL(ts, "/hello"))
	at = term.waitScreen(at, "; /help lists the commands\r\n")
	// The greeting erases the prompt if it came first, and the prompt
	// comes back after it.
	at = term.waitScreen(at, "< Please enter your name\r\n> ")

	term.typeText("Gopher\n")
	at = term.waitScreen(at, "Gopher\r\n") // the terminal's echo of the line
	// The reply may come before the next prompt, or erase it.
	at = term.waitScreen(at, "< Hi, Gopher!\r\n> ")

	term.typeText("/ping\n")
	at = term.waitScreen(at, "/ping\r\n")
	// The pong may come before the next prompt, or erase it.
	at = term.waitScreen(at, "pong in ")
	at = term.waitScreen(at, "\r\n> ")
	term.typeText("//who\n")
	at = term.waitScreen(at, "< Hi, /who!\r\n> ")
	term.typeText("/what\n")
	at = term.waitScreen(at, "unknown command /what; commands:\r\n")

	term.typeText("/close 4001 see you\n")
	at = term.waitScreen(at, "closed: 4001 private: see you\r\n")
	if code := waitExit(t, exit, 5*time.Second, &term.screen); code != 0 {
		t.Errorf("exit %d after /close 4001; the screen:\n%q", code, term.screen.String())
	}
	if rest := term.screen.String()[at:]; rest != "" {
		t.Errorf("the screen after the close: %q", rest)
	}
}

// TestDialTerminalEOF ends the input with Ctrl-D: on a terminal the session
// closes at once with 1000, without the wait for replies of a pipe.
func TestDialTerminalEOF(t *testing.T) {
	ts, _ := newTestServer(t)
	term := openTerminal(t)
	exit := runDialOn(term, nil, nil, nil, "-wait", "10s", wsURL(ts, "/echo"))
	at := term.waitScreen(0, "/help lists the commands\r\n> ")
	term.typeText("echo me\n")
	at = term.waitScreen(at, "< echo me\r\n> ")
	start := time.Now()
	term.typeText("\x04") // Ctrl-D at the start of a line: end of input
	if code := waitExit(t, exit, 5*time.Second, &term.screen); code != 0 {
		t.Errorf("exit %d after Ctrl-D", code)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("dial took %v to exit after Ctrl-D", took)
	}
	term.waitScreen(at, "\r\x1b[Kclosed: 1000 normal closure\r\n")
}

// TestDialTerminalOutput pipes the input in while stdout and stderr are a
// terminal: each message sent shows on stderr after "> ", each received on
// stdout after "< ", and no prompt. With stdout a pipe, it holds the
// received messages alone, unmarked.
func TestDialTerminalOutput(t *testing.T) {
	ts, _ := newTestServer(t)
	term := openTerminal(t)
	exit := runDialOn(term, strings.NewReader("one\ntwo\n"), nil, nil, "-wait", "200ms", wsURL(ts, "/echo"))
	if code := waitExit(t, exit, 5*time.Second, &term.screen); code != 0 {
		t.Errorf("exit %d", code)
	}
	at := term.waitScreen(0, "closed: 1000 normal closure\r\n")
	screen := term.screen.String()[:at]
	for _, want := range []string{"> one\r\n", "> two\r\n", "< one\r\n", "< two\r\n"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the screen lacks %q:\n%q", want, screen)
		}
	}
	if strings.Contains(screen, "\x1b[K") || strings.Contains(screen, "/help") {
		t.Errorf("a prompt or the commands on the screen of a piped dial:\n%q", screen)
	}

	term = openTerminal(t)
	var stdout syncBuffer
	exit = runDialOn(term, strings.NewReader("one\ntwo\n"), &stdout, nil, "-wait", "200ms", wsURL(ts, "/echo"))
	if code := waitExit(t, exit, 5*time.Second, &term.screen); code != 0 {
		t.Errorf("exit %d", code)
	}
	term.waitScreen(0, "> one\r\n> two\r\n")
	if got := stdout.String(); got != "one\ntwo\n" {
		t.Errorf("stdout, a pipe, holds %q; want the messages alone", got)
	}
}

// TestIsTerminal tells a terminal from a pipe, a file and /dev/null.
func TestIsTerminal(t *testing.T) {
	term := openTerminal(t)
	if !isTerminal(term.slave) {
		t.Error("a pseudo-terminal is not taken for a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	for name, f := range map[string]any{"a pipe": r, "/dev/null": devNull, "a buffer": &syncBuffer{}, "nil": (*os.File)(nil)} {
		if isTerminal(f) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
}
