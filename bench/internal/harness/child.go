// Package harness runs a benchmark server in a child process and reads
// what the benchmarks report about it: CPU time and memory from /proc, and
// the Go runtime's own statistics from the child's debug listener.
package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wskit/wskit/bench/internal/servers"
)

// Child is a server process started by Spawn.
type Child struct {
	Addr      string // the echo server's host:port
	DebugAddr string // the debug listener's host:port
	Pid       int

	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// Spawn starts argv, a program running servers.Main, with env added to
// this process's environment, and waits for the line with its addresses.
// A prefix such as taskset must exec the program so that Pid is the
// server's.
func Spawn(argv, env []string) (*Child, error) {
	cmd, stdin, stdout, err := StartPiped(argv, env)
	if err != nil {
		return nil, err
	}
	c := &Child{Pid: cmd.Process.Pid, cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	line := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		s, _ := br.ReadString('\n')
		line <- s
		io.Copy(os.Stderr, br)
		c.done <- cmd.Wait()
	}()
	select {
	case s := <-line:
		f := strings.Fields(s)
		if len(f) != 2 {
			c.Stop()
			return nil, fmt.Errorf("harness: %s printed %q, want \"ADDR DEBUGADDR\"", argv[0], s)
		}
		c.Addr, c.DebugAddr = f[0], f[1]
		return c, nil
	case <-time.After(30 * time.Second):
		c.Stop()
		return nil, fmt.Errorf("harness: %s did not print its address within 30s", argv[0])
	}
}

// StartPiped starts argv with env added to this process's environment,
// its stderr on ours, and pipes to its stdin and from its stdout.
func StartPiped(argv, env []string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, stdin, stdout, nil
}

// Stop closes the child's stdin, which ends it, and waits for it; after
// 10 s it is killed.
func (c *Child) Stop() error {
	c.stdin.Close()
	select {
	case err := <-c.done:
		return err
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("harness: server process %d killed after 10s", c.Pid)
	}
}

// Stats fetches the child's runtime statistics, collecting garbage first
// when gc is set.
func (c *Child) Stats(gc bool) (servers.Stats, error) {
	q := ""
	if gc {
		q = "?gc=1"
	}
	return c.stats(q)
}

// FreeOSMemory has the child collect garbage and return the memory it
// freed to the operating system (debug.FreeOSMemory), and returns its
// statistics afterwards.
func (c *Child) FreeOSMemory() (servers.Stats, error) { return c.stats("?gc=1&free=1") }

func (c *Child) stats(query string) (servers.Stats, error) {
	var st servers.Stats
	url := "http://" + c.DebugAddr + "/debug/stats" + query
	resp, err := http.Get(url)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("harness: %s: %s", url, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// CPU returns the child's user and system CPU time so far.
func (c *Child) CPU() (time.Duration, error) { return CPUTime(c.Pid) }

// ServerArgs returns the argv and environment that run the server impl
// through exe (a binary that calls servers.Main when role is set in its
// environment as roleVar=server), under taskset on cpus when cpus is not
// empty, with GOMAXPROCS set to the number of those CPUs. With profileDir
// set it writes profileDir/impl.cpu.pprof and, at exit,
// profileDir/impl.allocs.pprof, sampled at memRate when positive.
func ServerArgs(exe, roleVar, impl, cpus, profileDir string, memRate int) (argv, env []string, err error) {
	argv = []string{exe, "-impl", impl}
	if profileDir != "" {
		argv = append(argv,
			"-cpuprofile", filepath.Join(profileDir, impl+".cpu.pprof"),
			"-memprofile", filepath.Join(profileDir, impl+".allocs.pprof"))
		if memRate > 0 {
			argv = append(argv, "-memprofilerate", strconv.Itoa(memRate))
		}
	}
	env = []string{roleVar + "=server"}
	if cpus != "" {
		n, err := countCPUs(cpus)
		if err != nil {
			return nil, nil, err
		}
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, nil, err
		}
		argv = append([]string{ts, "-c", cpus}, argv...)
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", n))
	}
	return argv, env, nil
}

// countCPUs counts the CPUs of a taskset list such as "0", "0,2" or "0-3".
func countCPUs(list string) (int, error) {
	n := 0
	for _, part := range strings.Split(list, ",") {
		var lo, hi int
		if _, err := fmt.Sscanf(part, "%d-%d", &lo, &hi); err == nil {
			if hi < lo {
				return 0, fmt.Errorf("harness: bad CPU range %q", part)
			}
			n += hi - lo + 1
			continue
		}
		if _, err := fmt.Sscanf(part, "%d", &lo); err != nil {
			return 0, fmt.Errorf("harness: bad CPU list %q", list)
		}
		n++
	}
	return n, nil
}

// StartBenchserver runs the benchserver binary in dir serving impl on a
// loopback port, and returns its address, its process id and a function
// that stops it (closing its input, and killing it after 10 s).
func StartBenchserver(dir, impl string) (addr string, pid int, stop func(), err error) {
	cmd := exec.Command(filepath.Join(dir, "benchserver"), "-impl", impl, "-addr", "127.0.0.1:0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() {
		stdin.Close() // benchserver stops at the end of its input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", 0, nil, fmt.Errorf("benchserver did not start: %w", err)
	}
	addr, _, _ = strings.Cut(strings.TrimSpace(line), " ")
	return addr, cmd.Process.Pid, stop, nil
}
