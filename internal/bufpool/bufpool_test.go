package bufpool

import (
	"testing"

	"github.com/wskit/wskit/internal/race"
)

func TestCapIsGetsCapacity(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 257, 1000, 4096, 4097, maxSize - 1, maxSize, maxSize + 1, 3 * maxSize} {
		p := Get(n)
		if got := cap(*p); got != Cap(n) {
			t.Errorf("Cap(%d) = %d, but Get(%d) has capacity %d", n, Cap(n), n, got)
		}
		Put(p)
	}
}

func TestGetCapacity(t *testing.T) {
	for _, n := range []int{0, 1, 31, 255, 256, 257, 4096, maxSize, maxSize + 1} {
		p := Get(n)
		if len(*p) != 0 || cap(*p) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(*p), cap(*p))
		}
		Put(p)
	}
}

func TestGrowKeepsBytes(t *testing.T) {
	var p *[]byte
	want := []byte{}
	for i := range 5000 {
		p = Grow(p, 1)
		*p = append(*p, byte(i))
		want = append(want, byte(i))
	}
	if string(*p) != string(want) {
		t.Fatal("Grow lost bytes")
	}
	Put(p)
}

func TestPooledRoundTripDoesNotAllocate(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	Put(Get(1000))
	allocs := testing.AllocsPerRun(100, func() {
		p := Get(1000)
		*p = append(*p, 1, 2, 3)
		Put(p)
	})
	if allocs != 0 {
		t.Fatalf("Get/Put allocated %.1f times per run", allocs)
	}
}

func TestSmallBuffersArePooledToo(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	Put(Get(10))
	if allocs := testing.AllocsPerRun(100, func() { Put(Get(10)) }); allocs != 0 {
		t.Fatalf("a 10-byte buffer allocated %.1f times per run", allocs)
	}
}
