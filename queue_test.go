package wskit_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

// TestQueuePolicies sends a stream of large messages from several
// goroutines to a raw client that never reads, so that one send blocks in
// the network write while others find the queue full.
func TestQueuePolicies(t *testing.T) {
	checkGoroutines(t)
	const senders = 4
	for _, tc := range []struct {
		policy  wskit.QueuePolicy
		allowed []error // every send error must be one of these
		needed  error   // at least one send error must be this
		code    wskit.CloseCode
	}{
		{wskit.QueueBlock, []error{wskit.ErrQueueTimeout, wskit.ErrWriteTimeout}, nil, wskit.CloseAbnormal},
		{wskit.QueueCloseTryAgain, nil, wskit.ErrQueueFull, wskit.CloseTryAgainLater},
		{wskit.QueueClosePolicy, nil, wskit.ErrQueueFull, wskit.ClosePolicyViolation},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			opts := testOptions()
			opts.Timeout = 300 * time.Millisecond
			opts.MaxQueue = 64 << 10
			opts.QueuePolicy = tc.policy
			srv := newServer(t, opts)
			type result struct {
				errs []error
				end  ended
				took time.Duration
			}
			res := make(chan result, 1)
			url := serve(t, srv.WebSocket(func(s *wskit.Session) {
				start := time.Now()
				msg := make([]byte, 256<<10)
				errs := make(chan error, senders)
				for range senders {
					go func() {
						for {
							if err := s.SendBinary(msg); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				var r result
				for range senders {
					r.errs = append(r.errs, <-errs)
				}
				<-s.Done()
				r.end, r.took = endOf(s), time.Since(start)
				res <- r
			}))
			rc := dialRaw(t, url, 4096)
			r := await(t, res, "every sender to fail and the session to end")
			t.Logf("send errors %v; ended with %v (Err %v) after %v", r.errs, r.end.reason, r.end.err, r.took)
			for _, err := range r.errs {
				if tc.allowed != nil && !slices.ContainsFunc(tc.allowed, func(e error) bool { return errors.Is(err, e) }) {
					t.Errorf("send error %v, want one of %v", err, tc.allowed)
				}
			}
			if tc.needed != nil && !slices.ContainsFunc(r.errs, func(e error) bool { return errors.Is(e, tc.needed) }) {
				t.Errorf("no send returned %v: %v", tc.needed, r.errs)
			}
			if r.end.reason.Code != tc.code {
				t.Errorf("CloseReason %v, want %v", r.end.reason, tc.code)
			}
			if tc.code == wskit.CloseAbnormal && !errors.Is(r.end.err, wskit.ErrWriteTimeout) {
				t.Errorf("Err = %v, want ErrWriteTimeout", r.end.err)
			}
			rc.nc.Close()
		})
	}
}

// With QueueBlock a sender waits for room rather than failing at once: a
// slow reader that keeps reading gets every message.
func TestQueueBlockWaitsForSlowReader(t *testing.T) {
	checkGoroutines(t)
	opts := testOptions()
	opts.MaxQueue = 16 << 10
	srv := newServer(t, opts)
	const senders, per = 4, 100
	sendErr := make(chan error, 1)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		errs := make(chan error, senders)
		for range senders {
			go func() {
				msg := make([]byte, 8<<10)
				for range per {
					if err := s.SendBinary(msg); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		var first error
		for range senders {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		sendErr <- first
		for range s.Messages() {
		}
	}))
	c := dial(t, url, nil)
	for i := range senders * per {
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
		if m := receive(t, c); len(m.Payload) != 8<<10 {
			t.Fatalf("message %d of %d bytes", i, len(m.Payload))
		}
	}
	if err := await(t, sendErr, "the senders"); err != nil {
		t.Fatalf("a blocked send failed: %v", err)
	}
}
