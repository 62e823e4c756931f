package node

import (
	"context"
	"sync"
)

// coalescer shares one call of fetch among every caller that arrives while no call is
// running or while one is queued. A caller always gets the result of a fetch that started
// after it arrived, which is what makes a shared read index safe: the index was taken
// after the read was requested.
type coalescer struct {
	fetch func() (uint64, error)

	mu      sync.Mutex
	waiting []chan indexResult
	running bool
}

type indexResult struct {
	index uint64
	err   error
}

func (c *coalescer) get(ctx context.Context) (uint64, error) {
	ch := make(chan indexResult, 1)
	c.mu.Lock()
	c.waiting = append(c.waiting, ch)
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case r := <-ch:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *coalescer) loop() {
	for {
		c.mu.Lock()
		batch := c.waiting
		c.waiting = nil
		if len(batch) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		idx, err := c.fetch()
		for _, ch := range batch {
			ch <- indexResult{idx, err}
		}
	}
}
