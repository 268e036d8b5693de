package load

import "testing"

func TestPacer(t *testing.T) {
	p := newPacer(1000, 0) // one token per ms, a burst of 10
	if n := p.allow(0); n != 0 {
		t.Fatalf("at start: %d tokens", n)
	}
	if at := p.nextAt(); at != 1_000_000 {
		t.Fatalf("first token at %d ns, want 1 ms", at)
	}
	if n := p.allow(3_500_000); n != 3 {
		t.Fatalf("after 3.5 ms: %d tokens, want 3", n)
	}
	p.take(3)
	if n, at := p.allow(3_500_000), p.nextAt(); n != 0 || at != 4_000_000 {
		t.Fatalf("after taking them: %d tokens, next at %d", n, at)
	}
	if n := p.allow(1_000_000_000); n != 10 { // a long stall: the burst only
		t.Fatalf("after a second: %d tokens, want the burst of 10", n)
	}
	p.take(10)
	if n := p.allow(1_001_000_000); n != 1 {
		t.Fatalf("1 ms later: %d tokens, want 1", n)
	}
}
