package load

import "math"

// pacer hands out tokens at a steady rate: the send times of a rate limit.
// Tokens not taken pile up to burst at most, so that a loop that fell
// behind catches up only a little at once.
type pacer struct {
	perNS float64 // tokens per nanosecond
	start int64   // when the first token came, in ns
	used  int64   // tokens taken or forgone since start
	burst int64
}

// newPacer returns a pacer of rate tokens per second starting at now; its
// burst is 10 ms' worth (at least one).
func newPacer(rate float64, now int64) pacer {
	return pacer{perNS: rate / 1e9, start: now, burst: max(1, int64(rate/100))}
}

// allow returns how many tokens may be taken at now.
func (p *pacer) allow(now int64) int64 {
	avail := int64(float64(now-p.start)*p.perNS) - p.used
	if avail > p.burst {
		p.used += avail - p.burst
		avail = p.burst
	}
	return max(avail, 0)
}

// take takes n tokens.
func (p *pacer) take(n int64) { p.used += n }

// nextAt returns when the next token comes.
func (p *pacer) nextAt() int64 {
	return p.start + int64(math.Ceil(float64(p.used+1)/p.perNS))
}
