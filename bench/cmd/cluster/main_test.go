package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Every run of the harness at a small size, as a check that it still
// measures: each delivers every message it publishes.
func TestRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wskit-nats and starts servers")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool in PATH")
	}
	// The harness starts nats-server by running its own binary with
	// -role nats, which a test binary would not understand: it runs as
	// go run builds it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", ".", "-c", "30", "-publishers", "3", "-rate", "200", "-d", "1s", "-json")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rows := parseRows(t, out)
	if len(rows) != 6 {
		t.Fatalf("%d runs, want 6:\n%s", len(rows), out)
	}
	for _, r := range rows {
		if r.Deliveries == 0 || r.Missing != 0 || r.Errors != 0 {
			t.Errorf("%s: %d deliveries, %d missing, %d errors", r.Run, r.Deliveries, r.Missing, r.Errors)
		}
	}
}

func parseRows(t *testing.T, out []byte) []row {
	t.Helper()
	var rows []row
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	return rows
}
