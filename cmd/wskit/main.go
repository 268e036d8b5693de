// Command wskit is the wskit toolkit's command line: a demo server, an
// interactive client and a load generator.
//
//	wskit serve [-addr :8080] [-engine auto|poll|std] [-max-message 64MiB] [-ping 0] [-timeout 15s] [-chat-replay 0]
//		[-log-level debug|info|warn|error] [-log-format text|json]
//	wskit dial [-send TEXT]... [-count N] [-wait 2s] [-binary] [-json] [-commands] [-H 'Name: value']...
//		[-origin O] [-subprotocol P]... [-timeout 15s] URL
//	wskit bench [-scenario echo|pipeline|idle|broadcast|churn] [-c 1000] [-size 64] [-p 16] [-d 10s]
//		[-ramp 0] [-rate 0] [-src ADDR,...] [-pid PID] [-loops 0] [-json] [-progress] [-url] URL
//	wskit version
//
// serve answers /echo (a default session echoing every message), /events
// (the same echo from Events callbacks), /raw (a raw session echoing every
// frame as it came), /hello (the Ktor guide's greeting), /chat (the Ktor
// guide's SharedFlow chat: every text goes to every member) and / (a page
// to try them from a browser). dial sends the lines typed on stdin as text
// messages and prints what it receives, like wscat.
//
// Help asked for with -h goes to stdout, for every command; usage errors go
// to stderr.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	// WebSockets over HTTP/2 for serve -http2: net/http advertises
	// extended CONNECT only with this.
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a command and returns the process's exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
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
