package autobahn

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Main is the command line: it runs the selected cases against an echo
// server, prints a table and a summary line, and returns the exit status
// (0 when nothing failed, 1 when a case failed or the counts were not those
// of -expect, 2 on bad usage).
//
//	autobahn -url ws://127.0.0.1:9001/ [-cases 1.*,6.4.*] [-exclude 9.*] [-timeout 30s] [-v]
//	autobahn -url ws://127.0.0.1:9001/ -exclude '12.*,13.*' -expect OK=298,INFORMATIONAL=3
//	autobahn -url wss://localhost:9001/ -ca cert.pem -exclude '12.*,13.*' -expect OK=298,INFORMATIONAL=3
//	autobahn -http2 -url ws://127.0.0.1:9001/ -exclude '12.*,13.*' -expect OK=298,INFORMATIONAL=3
//
// -expect lists the count of each verdict, VERDICT=N separated by commas;
// a verdict it leaves out must not occur. A server that stops negotiating
// permessage-deflate turns 12.* and 13.* UNIMPLEMENTED, and one that gets
// laxer turns OK cases NON-STRICT: neither is FAILED, and both change the
// counts.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return runMain(ctx, args, os.Stdout, os.Stderr)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("autobahn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "ws://127.0.0.1:9001/", "URL of the echo server (ws:// or wss://)")
	tf := addTLSFlags(fs)
	include := fs.String("cases", "", "comma-separated case IDs or patterns to run, such as 1.*,6.4.* (default all)")
	exclude := fs.String("exclude", "", "comma-separated case IDs or patterns to skip")
	timeout := fs.Duration("timeout", 0, "hard limit per case (default: the case's own)")
	verbose := fs.Bool("v", false, "print the detail of every case, not only of those that are not OK")
	list := fs.Bool("list", false, "list the cases and exit")
	expectFlag := fs.String("expect", "", "the count of each verdict, such as OK=298,INFORMATIONAL=3; a verdict left out must not occur")
	overHTTP2 := fs.Bool("http2", false, "run each case as an RFC 8441 stream of one cleartext HTTP/2 connection (h2c), not over a TCP connection of its own")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	expect, err := ParseExpect(*expectFlag)
	if err != nil {
		fmt.Fprintf(stderr, "autobahn: -expect: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "autobahn: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if ctx, err = tf.context(ctx); err != nil {
		fmt.Fprintf(stderr, "autobahn: %v\n", err)
		return 2
	}
	filter := Filter(splitList(*include), splitList(*exclude))
	if *list {
		for _, c := range Cases() {
			if filter(c.ID) {
				fmt.Fprintf(stdout, "%-8s %s\n", c.ID, c.Description)
			}
		}
		return 0
	}

	run := Run
	var h2 *HTTP2
	if *overHTTP2 {
		h2 = NewHTTP2()
		defer h2.Close()
		run = h2.Run
	}
	const row = "%-8s %-13s %-16s %-5s %9s  %s\n"
	fmt.Fprintf(stdout, row, "CASE", "RESULT", "CLOSE", "CODE", "TIME", "DETAIL")
	var rs []Result
	for _, c := range Cases() {
		if !filter(c.ID) || ctx.Err() != nil {
			continue
		}
		r := run(ctx, *url, c, *timeout)
		rs = append(rs, r)
		code := "-"
		if r.CloseCode != 0 {
			code = fmt.Sprint(r.CloseCode)
		}
		detail := ""
		if *verbose || r.Behavior != OK {
			detail = r.Detail
		}
		ms := fmt.Sprintf("%.1fms", float64(r.Duration)/float64(time.Millisecond))
		fmt.Fprintf(stdout, row, r.ID, r.Behavior, r.Close, code, ms, detail)
	}
	if h2 != nil {
		fmt.Fprintf(stdout, "%d cases as streams of %d HTTP/2 connection(s)\n", len(rs), h2.Conns())
	}
	sum := Summarize(rs)
	fmt.Fprintln(stdout, SummaryLine(sum))
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "autobahn: interrupted")
		return 1
	}
	if expect != nil {
		if want, got := SummaryLine(expect), SummaryLine(sum); !sameCounts(expect, sum) {
			fmt.Fprintf(stderr, "autobahn: expected %s; got %s\n", want, got)
			return 1
		}
	}
	if sum[Failed] > 0 {
		return 1
	}
	return 0
}

// ParseExpect reads counts of verdicts written VERDICT=N and separated by
// commas, such as "OK=298,INFORMATIONAL=3"; "" gives nil.
func ParseExpect(s string) (map[string]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, num, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		n, err := strconv.Atoi(strings.TrimSpace(num))
		switch {
		case !ok || err != nil || n < 0:
			return nil, fmt.Errorf("%q: want VERDICT=COUNT", part)
		case !slices.Contains(verdicts, name):
			return nil, fmt.Errorf("%q: unknown verdict (want one of %s)", name, strings.Join(verdicts, ", "))
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("%s given twice", name)
		}
		m[name] = n
	}
	return m, nil
}

// verdicts are the values of Result.Behavior.
var verdicts = []string{OK, NonStrict, Informational, Unimplemented, Failed}

// sameCounts reports whether got has want's count of every verdict, and
// none of any other.
func sameCounts(want, got map[string]int) bool {
	for k, n := range got {
		if want[k] != n {
			return false
		}
	}
	for k, n := range want {
		if got[k] != n {
			return false
		}
	}
	return true
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
