package load

import (
	"math"
	"math/bits"
	"time"
)

// The histogram's buckets are log-linear, as in HdrHistogram: values under
// subCount have a bucket each; above, every power of two is split into
// subHalf buckets of equal width. A value is then known to within 1/subHalf
// (0.8%) of itself, over the whole int64 range, in fixed memory.
const (
	subBits    = 8
	subCount   = 1 << subBits
	subHalf    = subCount / 2
	numBuckets = (64-subBits)*subHalf + subCount
)

// Histogram records latencies in nanoseconds. Recording is a few
// instructions and never allocates; a Histogram takes about 60 KB, so keep
// it behind a pointer. The zero value is empty and ready to use. It is not
// safe for concurrent use: give each goroutine its own and Merge them.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      uint64
	min, max int64
}

// bucketOf returns the index of the bucket holding v.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits
	return shift*subHalf + int(v>>shift)
}

// bucketRange returns the lowest and highest value of bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := i/subHalf - 1
	lo = uint64(i-shift*subHalf) << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one value; a negative one counts as 0.
func (h *Histogram) Record(ns int64) {
	ns = max(ns, 0)
	h.counts[bucketOf(uint64(ns))]++
	if h.n == 0 || ns < h.min {
		h.min = ns
	}
	h.max = max(h.max, ns)
	h.n++
	h.sum += uint64(ns)
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Merge adds the values recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns how many values were recorded.
func (h *Histogram) Count() int64 { return int64(h.n) }

// Min returns the smallest value recorded, exactly; 0 when empty.
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest value recorded, exactly; 0 when empty.
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the mean of the values recorded; 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.n)
}

// Quantile returns the value under which a fraction q (0 to 1) of the
// recorded values lie: the value of rank ⌈q·n⌉ in sorted order, rounded up
// to the top of its bucket (so at most 0.8% above it) and never beyond the
// largest value recorded. It returns 0 when h is empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			_, hi := bucketRange(i)
			return min(max(int64(hi), h.min), h.max)
		}
	}
	return h.max
}

// Latency sums up a Histogram of latencies in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min_us"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p99_9_us"`
	Max   float64 `json:"max_us"`
}

// Summary returns h's count and percentiles in microseconds.
func (h *Histogram) Summary() Latency {
	us := func(ns int64) float64 { return float64(ns) / float64(time.Microsecond) }
	return Latency{
		Count: h.Count(),
		Min:   us(h.Min()),
		Mean:  h.Mean() / float64(time.Microsecond),
		P50:   us(h.Quantile(0.50)),
		P90:   us(h.Quantile(0.90)),
		P99:   us(h.Quantile(0.99)),
		P999:  us(h.Quantile(0.999)),
		Max:   us(h.Max()),
	}
}
