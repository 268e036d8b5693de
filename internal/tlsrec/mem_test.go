package tlsrec

import (
	"runtime"
	"testing"

	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/race"
)

var allocSizes = []int{64, 1024, MaxPlaintext}

// sealedRecords returns n records of size bytes each from w, one per
// slice, to be opened in order.
func sealedRecords(t testing.TB, w *RecordLayer, n, size int) [][]byte {
	recs := make([][]byte, n)
	data := pattern(size)
	for i := range recs {
		recs[i] = records(t, w, data)
	}
	return recs
}

// Whole records open in place without allocating, in every suite.
func TestReceiveDoesNotAllocate(t *testing.T) {
	const runs = 200
	for _, id := range suites {
		for _, size := range allocSizes {
			w, r := pair(t, id)
			recs := sealedRecords(t, w, runs+1, size)
			i := 0
			allocs := testing.AllocsPerRun(runs, func() {
				ev, _, ok, err := r.Receive(recs[i])
				i++
				if !ok || err != nil || len(ev.Data) != size {
					t.Fatal(ok, err)
				}
			})
			if allocs != 0 {
				t.Errorf("%s, %d bytes: %.1f allocations per record", suiteName(id), size, allocs)
			}
		}
	}
}

// Sealing into a reused buffer does not allocate, either way.
func TestSealDoesNotAllocate(t *testing.T) {
	for _, id := range suites {
		for _, size := range allocSizes {
			w, _ := pair(t, id)
			data := pattern(size)
			dst := make([]byte, 0, w.SealedSize(size))
			if allocs := testing.AllocsPerRun(200, func() {
				var err error
				if dst, err = w.AppendRecords(dst[:0], data); err != nil {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Errorf("AppendRecords %s, %d bytes: %.1f allocations", suiteName(id), size, allocs)
			}
			buf := make([]byte, HeaderLen+size, HeaderLen+size+Overhead)
			if allocs := testing.AllocsPerRun(200, func() {
				var err error
				if buf, err = w.SealInPlace(buf[:HeaderLen+size], 0); err != nil {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Errorf("SealInPlace %s, %d bytes: %.1f allocations", suiteName(id), size, allocs)
			}
		}
	}
}

// Records cut across reads go through pooled buffers, reused from one
// record to the next, and given back between records.
func TestCutRecordsReuseBuffers(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	const runs = 100
	for _, size := range allocSizes {
		w, r := pair(t, suites[0])
		recs := sealedRecords(t, w, runs+1, size)
		i := 0
		allocs := testing.AllocsPerRun(runs, func() {
			rec := recs[i]
			i++
			half := len(rec) / 2
			if _, _, ok, err := r.Receive(rec[:half]); ok || err != nil {
				t.Fatal(ok, err)
			}
			if _, _, ok, err := r.Receive(rec[half:]); !ok || err != nil {
				t.Fatal(ok, err)
			}
			r.ReturnLent()
		})
		if allocs != 0 {
			t.Errorf("%d bytes: %.1f allocations per cut record", size, allocs)
		}
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// An idle record layer holds its two AEADs, their secrets and counters,
// and no buffer, even after records were cut, KeyUpdates answered and
// replies drained. The figures per idle layer are logged.
func TestIdleMemoryBound(t *testing.T) {
	const n = 10000
	bounds := map[uint16]int64{ // measured with Go 1.26 on amd64: 1792 B and 320 B
		suites[0]: 2048,
		suites[1]: 2048,
		suites[2]: 512,
	}
	for _, id := range suites {
		layers := make([]*RecordLayer, n)
		cfg := testConfig(id, Server)
		before := heapInUse()
		for i := range layers {
			layers[i] = newLayer(t, cfg)
		}
		per := (heapInUse() - before) / n
		runtime.KeepAlive(layers)
		t.Logf("%s: %d bytes per idle record layer", suiteName(id), per)
		if per > bounds[id] {
			t.Errorf("%s: %d bytes per idle record layer, more than %d", suiteName(id), per, bounds[id])
		}
	}

	lent := bufpool.Lent()
	w, r := pair(t, suites[0])
	for i, size := range []int{1, 100, 3 * MaxPlaintext} {
		w.UpdateKeys(i%2 == 0)
		got := readAll(r, records(t, w, pattern(size)), 7, 1000)
		if got.err != nil || len(got.data) != size {
			t.Fatal(got.err)
		}
		r.ReturnLent()
		if r.Buffered() != 0 || r.Replies() != 0 || bufpool.Lent() != lent {
			t.Fatalf("after %d bytes: %d buffered, %d bytes of replies, %d buffers lent", size, r.Buffered(), r.Replies(), bufpool.Lent()-lent)
		}
	}
}
