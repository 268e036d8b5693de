package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// runVersion prints what versionText says about this binary.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "wskit version: unexpected argument %q\n", args[0])
		return 2
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprint(stdout, versionText(bi))
	return 0
}

// versionText describes a build: the module's version (a tag when built
// with go install module@version, "(devel)" from a checkout), the commit
// and its time when the build recorded them (go build does in a git
// checkout, unless -buildvcs=false), and the Go release and platform. bi
// may be nil, for a binary without build information.
func versionText(bi *debug.BuildInfo) string {
	var b strings.Builder
	version, path := "(unknown)", "github.com/wskit/wskit"
	goVersion := runtime.Version()
	if bi != nil {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.Main.Path != "" {
			path = bi.Main.Path
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
	}
	fmt.Fprintf(&b, "wskit %s (module %s)\n", version, path)
	var revision, at, modified string
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	if revision != "" {
		fmt.Fprintf(&b, "commit %s", revision)
		if at != "" {
			fmt.Fprintf(&b, " of %s", at)
		}
		if modified == "true" {
			b.WriteString(", with uncommitted changes")
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "built with %s for %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
