package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	// Consecutive buckets are adjacent, and every value lands in the bucket
	// whose range holds it.
	var next uint64
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if lo != next || hi < lo {
			t.Fatalf("bucket %d is [%d, %d], want it to start at %d", i, lo, hi, next)
		}
		for _, v := range []uint64{lo, hi, lo + (hi-lo)/2} {
			if b := bucketOf(v); b != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, b, i)
			}
		}
		if lo >= subCount && float64(hi-lo+1) > float64(lo)/subHalf {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its values", i, lo, hi, subHalf)
		}
		next = hi + 1
	}
	if next != 0 {
		t.Fatalf("the last bucket ends at %d, want the top of uint64", next-1)
	}
}

func TestQuantilesAgainstSortedValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"small":       func() int64 { return rng.Int64N(300) },
		"uniform":     func() int64 { return 1_000 + rng.Int64N(1_000_000) },
		"exponential": func() int64 { return int64(rng.ExpFloat64() * 50_000) },
		"log-uniform": func() int64 { return int64(math.Exp(rng.Float64() * math.Log(1e11))) },
		"bimodal": func() int64 {
			if rng.IntN(100) == 0 {
				return 5_000_000 + rng.Int64N(1_000)
			}
			return 20_000 + rng.Int64N(100)
		},
	}
	quantiles := []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1}
	for name, gen := range dists {
		for _, n := range []int{1, 2, 7, 1000, 100_000} {
			var h Histogram
			vals := make([]int64, n)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range quantiles {
				rank := max(int(math.Ceil(q*float64(n))), 1)
				want := vals[rank-1]
				got := h.Quantile(q)
				if got < want || float64(got-want) > float64(want)/subHalf {
					t.Errorf("%s n=%d: Quantile(%v) = %d, want %d (+%d at most)", name, n, q, got, want, want/subHalf)
				}
			}
			if h.Min() != vals[0] || h.Max() != vals[n-1] || h.Count() != int64(n) {
				t.Errorf("%s n=%d: min %d max %d count %d, want %d %d %d", name, n, h.Min(), h.Max(), h.Count(), vals[0], vals[n-1], n)
			}
			var sum float64
			for _, v := range vals {
				sum += float64(v)
			}
			if mean := sum / float64(n); math.Abs(h.Mean()-mean) > 1e-9*mean+1e-9 {
				t.Errorf("%s n=%d: mean %v, want %v", name, n, h.Mean(), mean)
			}
		}
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Fatalf("empty histogram: q50 %d max %d mean %v count %d", h.Quantile(0.5), h.Max(), h.Mean(), h.Count())
	}
	h.Record(-5)
	h.Record(math.MaxInt64)
	if h.Min() != 0 || h.Quantile(0) != 0 || h.Quantile(1) != math.MaxInt64 {
		t.Fatalf("min %d q0 %d q1 %d", h.Min(), h.Quantile(0), h.Quantile(1))
	}
	h.Reset()
	if h.Count() != 0 || h.Max() != 0 {
		t.Fatalf("after Reset: count %d max %d", h.Count(), h.Max())
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10_000 {
		v := int64(rng.ExpFloat64() * 1e6)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&Histogram{})
	m.Merge(&a)
	m.Merge(&b)
	if m != all {
		t.Fatalf("merged: count %d min %d max %d, want %d %d %d", m.Count(), m.Min(), m.Max(), all.Count(), all.Min(), all.Max())
	}
}

func TestHistogramRecordAllocs(t *testing.T) {
	h := new(Histogram)
	v := int64(1)
	if n := testing.AllocsPerRun(1000, func() { h.Record(v); v = v*3 + 1 }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := new(Histogram)
	for i := range b.N {
		h.Record(int64(i) * 7919)
	}
}
