package bench

import (
	"os"
	"testing"

	"github.com/wskit/wskit/bench/internal/servers"
)

// roleVar, set to "server" in a child's environment, makes the test binary
// a benchmark server (servers.Main) instead of running tests: BenchmarkE2E
// measures the server in its own process this way.
const roleVar = "WSKIT_BENCH_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleVar) == "server" {
		os.Exit(servers.Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}
