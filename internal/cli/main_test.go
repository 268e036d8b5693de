package cli

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

func TestRun(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string // a part of it
		stderr string // a part of it
	}{
		{args: nil, code: 2, stderr: "Usage:"},
		{args: []string{"help"}, code: 0, stdout: "wskit dial [flags] URL"},
		{args: []string{"-h"}, code: 0, stdout: "wskit serve [flags]"},
		{args: []string{"frobnicate"}, code: 2, stderr: "wskit: unknown command \"frobnicate\"\n\nwskit is"},
		{args: []string{"serve", "-h"}, code: 0, stdout: "-max-message"},
		{args: []string{"dial", "-h"}, code: 0, stdout: "Usage: wskit dial"},
		{args: []string{"bench", "-h"}, code: 0, stdout: "-scenario"},
		{args: []string{"serve", "-nope"}, code: 2, stderr: "flag provided but not defined: -nope\nUsage: wskit serve"},
		{args: []string{"version"}, code: 0, stdout: "wskit "},
		{args: []string{"-version"}, code: 0, stdout: "built with go"},
		{args: []string{"version", "extra"}, code: 2, stderr: "unexpected argument"},
		{args: []string{"dial"}, code: 2, stderr: "want exactly one URL"},
	}
	for _, tt := range tests {
		var stdout, stderr syncBuffer
		code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("run %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
				tt.args, code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
}

// TestServeBinary builds wskit, runs wskit serve on a free port, talks to
// /echo and stops it with SIGINT.
func TestServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("SIGINT cannot be sent to a process on Windows")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	bin := filepath.Join(t.TempDir(), "wskit")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/wskit/wskit/cmd/wskit").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "serve", "-addr", "127.0.0.1:0", "-log-level", "debug")
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// Read the log until the listening line, then keep collecting it.
	var logs syncBuffer
	addrc := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderrPipe)
		for sc.Scan() {
			logs.Write([]byte(sc.Text() + "\n"))
			if a := listenAddr(sc.Text()); a != "" {
				addrc <- a
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(10 * time.Second):
		t.Fatalf("no listening line in the log:\n%s", logs.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := wskit.Dial(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendText("over the wire"); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, s); m.Text() != "over the wire" {
		t.Fatalf("echo = %q", m.Payload)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	_, err = s.Receive(ctx)
	want := wskit.CloseReason{Code: wskit.CloseGoingAway, Reason: "server shutting down"}
	if r, _ := s.CloseReason(); r != want {
		t.Errorf("session ended with %v (%v), want %v", r, err, want)
	}
	select {
	case <-copied: // the process closed its stderr
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("wskit serve did not stop on SIGINT:\n%s", logs.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wskit serve: %v\n%s", err, logs.String())
	}
	log := logs.String()
	for _, want := range []string{"session open", "path=/echo", "shutting down", "code=1001", "msg=stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestVersionText(t *testing.T) {
	platform := " for " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build information", nil, "wskit (unknown) (module github.com/wskit/wskit)\nbuilt with " + runtime.Version() + platform},
		{
			"go install of a tag",
			&debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "github.com/wskit/wskit", Version: "v0.3.0"}},
			"wskit v0.3.0 (module github.com/wskit/wskit)\nbuilt with go1.26.1" + platform,
		},
		{
			"go build in a checkout with changes",
			&debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "github.com/wskit/wskit", Version: "(devel)"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "b66982b0"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}},
			"wskit (devel) (module github.com/wskit/wskit)\ncommit b66982b0 of 2026-01-02T03:04:05Z, with uncommitted changes\nbuilt with go1.26.1" + platform,
		},
		{
			"a clean checkout",
			&debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "github.com/wskit/wskit", Version: "(devel)"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "b66982b0"}, {Key: "vcs.modified", Value: "false"}}},
			"wskit (devel) (module github.com/wskit/wskit)\ncommit b66982b0\nbuilt with go1.26.1" + platform,
		},
	}
	for _, tt := range tests {
		if got := versionText(tt.bi); got != tt.want {
			t.Errorf("%s:\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}
