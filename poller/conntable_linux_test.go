//go:build linux

package poller

import "testing"

func TestConnTable(t *testing.T) {
	var tab connTable
	a, b := &loop{}, &loop{}
	fds := []int{0, 5, 1<<connPageBits - 1, 1 << connPageBits, 5 << connPageBits, 1 << 20}
	for i, fd := range fds {
		if c := tab.get(fd); c != nil {
			t.Fatalf("fd %d: %p before set", fd, c)
		}
		l := a
		if i%2 == 1 {
			l = b
		}
		tab.set(fd, &Conn{fd: fd, l: l})
	}
	for _, fd := range fds {
		if c := tab.get(fd); c == nil || c.fd != fd {
			t.Fatalf("fd %d: got %v", fd, c)
		}
	}
	if c := tab.get(6); c != nil {
		t.Fatalf("fd 6 was never set: %v", c)
	}
	count := map[*loop]int{}
	for _, l := range []*loop{a, b} {
		tab.each(l, func(c *Conn) {
			if c.l != l {
				t.Fatalf("each(%p) gave a connection of %p", l, c.l)
			}
			count[l]++
		})
	}
	if count[a] != 3 || count[b] != 3 {
		t.Fatalf("each found %d and %d connections, want 3 and 3", count[a], count[b])
	}
	for _, fd := range fds {
		tab.set(fd, nil)
		if c := tab.get(fd); c != nil {
			t.Fatalf("fd %d: %v after forgetting it", fd, c)
		}
	}
	tab.set(1<<22, nil) // forgetting past the pages made makes none
	if dir := tab.dir.Load(); len(*dir) > 1<<20>>connPageBits+1 {
		t.Fatalf("forgetting grew the directory to %d pages", len(*dir))
	}
}
