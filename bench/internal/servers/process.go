package servers

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	rpprof "runtime/pprof"
	"slices"
	"strings"
	"syscall"
)

// Stats is what a server process reports on its debug listener at
// /debug/stats: after two GCs when asked with ?gc=1, the second emptying
// the victim caches of sync.Pools (what pools hold is shared by the
// connections, not held by each); ?free=1 also returns the freed memory to
// the operating system first (debug.FreeOSMemory), so that VmRSS read
// afterwards counts only what the process needs.
type Stats struct {
	Goroutines  uint64 `json:"goroutines"`
	HeapObjects uint64 `json:"heap_objects_bytes"` // live and not yet swept
	Stacks      uint64 `json:"stacks_bytes"`
	Total       uint64 `json:"total_bytes"` // all memory mapped by the runtime
	Mallocs     uint64 `json:"mallocs"`     // cumulative, tiny ones included
	TotalAlloc  uint64 `json:"total_alloc_bytes"`
	// Classes are the runtime's /memory/classes/ metrics, by name: where
	// the memory mapped goes (objects, free space in spans in use,
	// metadata, stacks, ...).
	Classes map[string]uint64 `json:"memory_classes"`
}

// memoryClasses are the names of the runtime's /memory/classes/ metrics.
var memoryClasses = func() []string {
	var names []string
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") {
			names = append(names, d.Name)
		}
	}
	return names
}()

var statSamples = []metrics.Sample{
	{Name: "/sched/goroutines:goroutines"},
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/stacks:bytes"},
	{Name: "/memory/classes/total:bytes"},
}

func readStats(gc, free bool) Stats {
	if gc || free {
		runtime.GC()
		runtime.GC()
	}
	if free {
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	samples := make([]metrics.Sample, len(statSamples))
	copy(samples, statSamples)
	metrics.Read(samples)
	classes := make([]metrics.Sample, len(memoryClasses))
	for i, n := range memoryClasses {
		classes[i].Name = n
	}
	metrics.Read(classes)
	byName := make(map[string]uint64, len(classes))
	for _, c := range classes {
		byName[strings.TrimPrefix(c.Name, "/memory/classes/")] = c.Value.Uint64()
	}
	return Stats{
		Classes:     byName,
		Goroutines:  samples[0].Value.Uint64(),
		HeapObjects: samples[1].Value.Uint64(),
		Stacks:      samples[2].Value.Uint64(),
		Total:       samples[3].Value.Uint64(),
		Mallocs:     ms.Mallocs,
		TotalAlloc:  ms.TotalAlloc,
	}
}

// debugHandler serves /debug/stats and net/http/pprof.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		q := r.URL.Query()
		json.NewEncoder(w).Encode(readStats(q.Get("gc") == "1", q.Get("free") == "1"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	return mux
}

// Main is a server process: it serves an implementation on -addr, a debug
// listener on -debug, prints one line "ADDR DEBUGADDR" on stdout and runs
// until SIGTERM, SIGINT or (unless -stdin=false) the end of stdin. It returns the exit status.
// cmd/benchserver is this function; the benchmarks and cmd/idle run it by
// re-executing their own binary.
func Main(args []string) int {
	fs := flag.NewFlagSet("benchserver", flag.ContinueOnError)
	impl := fs.String("impl", "wskit-poll-events", "implementation: "+fmt.Sprint(slices.Concat(Names, Variants, TLSVariants)))
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	debug := fs.String("debug", "127.0.0.1:0", "debug listener address (/debug/stats, /debug/pprof/)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memprofile := fs.String("memprofile", "", "write an allocation profile of the whole run to this file at exit")
	memrate := fs.Int("memprofilerate", 0, "set runtime.MemProfileRate (1 records every allocation); 0 keeps the default")
	stdin := fs.Bool("stdin", true, "exit at the end of standard input (start with -stdin=false when it is /dev/null)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *memrate > 0 {
		runtime.MemProfileRate = *memrate
	}
	if err := serve(*impl, *addr, *debug, *cpuprofile, *memprofile, *stdin); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		return 1
	}
	return 0
}

func serve(impl, addr, debug, cpuprofile, memprofile string, stdin bool) error {
	if !Known(impl) {
		return fmt.Errorf("unknown implementation %q", impl)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	dln, err := net.Listen("tcp", debug)
	if err != nil {
		ln.Close()
		return err
	}
	go http.Serve(dln, debugHandler())
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := rpprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			rpprof.StopCPUProfile()
			f.Close()
		}()
	}
	if memprofile != "" {
		defer func() {
			if err := writeProfile("allocs", memprofile); err != nil {
				fmt.Fprintln(os.Stderr, "benchserver:", err)
			}
		}()
	}
	srv, err := Start(impl, ln)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", ln.Addr(), dln.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	eof := make(chan error, 1)
	if stdin {
		go func() {
			_, err := io.Copy(io.Discard, os.Stdin)
			eof <- err
		}()
	}
	select {
	case <-stop:
	case <-eof:
	}
	if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintln(os.Stderr, "benchserver: close:", err)
	}
	return nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rpprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
