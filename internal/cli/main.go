// Package cli is wskit's command line: cmd/wskit runs it as it is, and
// the NATS module's wskit-nats runs it with an Extension that gives wskit
// serve a broker, so that the core module never depends on NATS.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/wskit/wskit"
	// WebSockets over HTTP/2 for serve -http2: net/http advertises
	// extended CONNECT only with this, which every command built on this
	// package wants.
	_ "github.com/wskit/wskit/xconnect"
)

const usage = `wskit is a WebSocket demo server, client and load generator.

Usage:

	wskit serve [flags]       serve /echo, /events, /raw, /hello, /chat and a demo page at /
	wskit dial [flags] URL    open a session; stdin lines go out, messages are printed
	wskit bench [flags] URL   put load on a server: echo, pipeline, idle, broadcast or churn
	wskit version             show the version and how this binary was built
	wskit help                show this help

Run 'wskit serve -h', 'wskit dial -h' or 'wskit bench -h' for the flags of a command.
`

// Extension adds to wskit serve what a module other than wskit's brings,
// such as a broker: the chat hubs then span every server that runs with
// the same broker.
type Extension struct {
	// Flags adds the extension's flags to those of wskit serve.
	Flags func(fs *flag.FlagSet)
	// Check checks the flags once parsed.
	Check func() error
	// Start starts what the flags ask for, and returns the broker of the
	// chat hubs (nil for none) and a function that stops it, called once
	// the server has shut down.
	Start func(ctx context.Context, log *slog.Logger) (wskit.Broker, func(), error)
	// Metrics, when set, returns the handler serve -metrics runs at
	// /metrics, beside /debug/vars, for the server and its chat hub.
	Metrics func(srv *wskit.Server, chat *wskit.Hub) http.Handler
}

// Main runs the command line with the process's arguments, until SIGINT or
// SIGTERM for serve, and exits with its code. ext may be nil.
func Main(ext *Extension) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, ext)
	stop()
	os.Exit(code)
}

// Run dispatches args to a command and returns the process's exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, ext *Extension) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServeWith(ctx, args[1:], stdout, stderr, ext)
	case "dial":
		return runDial(ctx, args[1:], stdin, stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "-version", "--version":
		return runVersion(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "wskit: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// run runs the command line without an extension.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Run(ctx, args, stdin, stdout, stderr, nil)
}

// flagSet is a command's flags. Its help (-h) goes to stdout, like the
// help of wskit itself; a usage error and the usage go to stderr.
type flagSet struct {
	*flag.FlagSet
	stdout, stderr io.Writer
	synopsis       string
	out            bytes.Buffer // what flag printed during the last parse
}

// newFlagSet returns the flags of the command name, whose usage starts with
// synopsis.
func newFlagSet(name, synopsis string, stdout, stderr io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), stdout: stdout, stderr: stderr, synopsis: synopsis}
	fs.SetOutput(&fs.out)
	fs.FlagSet.Usage = func() { fs.printUsage(&fs.out) }
	return fs
}

func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\nFlags:\n", fs.synopsis)
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// showUsage prints the usage to stderr, for a usage error found after
// parsing.
func (fs *flagSet) showUsage() { fs.printUsage(fs.stderr) }

// parse parses flags placed before, between or after the positional
// arguments, which it returns. A "--" ends the flags. It writes the help to
// stdout when -h asks for it (and returns flag.ErrHelp), or the error and
// the usage to stderr.
func (fs *flagSet) parse(args []string) ([]string, error) {
	fs.out.Reset()
	rest, err := fs.parseArgs(args)
	w := fs.stderr
	if errors.Is(err, flag.ErrHelp) {
		w = fs.stdout
	}
	w.Write(fs.out.Bytes())
	fs.out.Reset()
	return rest, err
}

func (fs *flagSet) parseArgs(args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args)-len(rest) > 0 && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
