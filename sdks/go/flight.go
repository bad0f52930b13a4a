package nexus

import (
	"context"
	"sync"
	"time"
)

// fetchReason tells a fetch function why it runs.
type fetchReason int

const (
	fetchInitial fetchReason = iota // nothing cached yet
	fetchStale                      // the cached value is past its fresh-until time
	fetchForced                     // the cached value was refused (an upstream 401, say)
)

// fetchFunc fetches a new value; prev is the cached one (zero with fetchInitial).
// It returns the value and when it stops being fresh.
type fetchFunc[T any] func(ctx context.Context, reason fetchReason, prev T) (T, time.Time, error)

// flightCache holds one value and refreshes it single-flight: however many goroutines
// find it stale at once, one fetch runs and all of them get its result.
type flightCache[T any] struct {
	clock Clock
	fetch fetchFunc[T]
	// keep, if set, decides whether a stale value may still be used after its refresh
	// failed with err (the broker briefly unreachable, the value not yet expired); it
	// returns until when (the next refresh is tried then) and false when it may not.
	keep func(prev T, err error, now time.Time) (time.Time, bool)

	mu         sync.Mutex
	val        T
	have       bool
	freshUntil time.Time
	gen        uint64 // incremented by every successful fetch
	call       *flightCall[T]
}

type flightCall[T any] struct {
	done chan struct{}
	val  T
	gen  uint64
	err  error
}

// get returns a fresh value and its generation. With staleGen non-nil, the value of that
// generation is treated as refused: it is fetched again unless a newer one already exists.
func (c *flightCache[T]) get(ctx context.Context, staleGen *uint64) (T, uint64, error) {
	c.mu.Lock()
	call := c.call
	if call == nil {
		reason := fetchInitial
		switch {
		case !c.have:
		case staleGen != nil && *staleGen == c.gen:
			reason = fetchForced
		case c.clock.Now().Before(c.freshUntil):
			v, g := c.val, c.gen
			c.mu.Unlock()
			return v, g, nil
		default:
			reason = fetchStale
		}
		call = &flightCall[T]{done: make(chan struct{})}
		c.call = call
		prev := c.val
		// The fetch outlives the goroutine that started it (its context may be cancelled
		// while others wait for the same result); the retry policy and timeouts bound it.
		fctx := context.WithoutCancel(ctx)
		go func() {
			v, until, err := c.fetch(fctx, reason, prev)
			c.mu.Lock()
			if err == nil {
				c.val, c.have, c.freshUntil = v, true, until
				c.gen++
			} else if reason == fetchStale && c.keep != nil {
				if until, ok := c.keep(prev, err, c.clock.Now()); ok {
					// Refreshing ahead of expiry failed but the value still works: use it
					// a little longer instead of failing the caller.
					c.freshUntil = until
					err = nil
				}
			}
			call.val, call.gen, call.err = c.val, c.gen, err
			c.call = nil
			c.mu.Unlock()
			close(call.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		if call.err != nil {
			var zero T
			return zero, 0, call.err
		}
		return call.val, call.gen, nil
	case <-ctx.Done():
		var zero T
		return zero, 0, ctx.Err()
	}
}

// invalidate marks the cached value stale (the next get refreshes it).
func (c *flightCache[T]) invalidate() {
	c.mu.Lock()
	c.freshUntil = time.Time{}
	c.mu.Unlock()
}

// freshUntil computes how long a value that expires at expiresAt stays fresh: until skew
// before it, but never less than half of its remaining life (a short-lived credential
// is not refreshed on every use) nor less than minFresh.
func freshUntil(now, expiresAt time.Time, skew time.Duration) time.Time {
	const minFresh = 5 * time.Second
	remaining := expiresAt.Sub(now)
	ahead := remaining - skew
	if half := remaining / 2; ahead < half {
		ahead = half
	}
	if ahead < minFresh {
		ahead = minFresh
	}
	return now.Add(ahead)
}
