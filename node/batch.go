package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/imnode/imnode/fsm"
)

// Forwarded writes are coalesced: a follower sends the commands waiting for the leader in
// one /internal/propose call, and the leader appends them all before it waits for
// any. One HTTP exchange then carries many writes, where each write used to cost a request,
// a response and their syscalls on both nodes.
const (
	// maxForwardBatch bounds the commands of one call (raft appends up to maxAppendEntries
	// at a time anyway).
	maxForwardBatch = 256
	// maxForwardCalls is how many batch calls may be on the wire at once: while they are,
	// new writes queue and leave together in the next.
	maxForwardCalls = 4
	// maxForwardWait bounds that queueing: a write that has waited this long for one of the
	// calls to come back goes out in a call of its own beside them, up to
	// maxForwardOverflow calls in all. Four calls carry the load, but when they are slow
	// together (a slow raft round, a stalled process) a queued write used to wait out a
	// whole call before its own: up to 34 ms in a million sends at c = 64. Bounding the
	// wait cut the followers' sends above 50 ms from 467 to 206 in two pairs of such runs.
	maxForwardWait     = 5 * time.Millisecond
	maxForwardOverflow = 16
)

type forwarded struct {
	cmd    []byte
	queued time.Time
	done   chan internalReply // buffered: the sender never blocks on a caller that gave up
}

// forwardBatcher queues the writes a follower forwards and sends them in batches.
type forwardBatcher struct {
	n *Node

	mu      sync.Mutex
	queue   []*forwarded
	senders int
	// waiting is set while a timer is armed to check the queue's oldest write against
	// maxForwardWait.
	waiting bool
}

// propose forwards cmd to the leader with the writes queued beside it. The reply's Status
// says what is known of the outcome, as for a single forwarded write.
func (b *forwardBatcher) propose(ctx context.Context, cmd []byte) internalReply {
	p := &forwarded{cmd: cmd, queued: time.Now(), done: make(chan internalReply, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if b.senders < maxForwardCalls {
		b.senders++
		go b.send()
	} else if !b.waiting {
		b.waiting = true
		time.AfterFunc(maxForwardWait, b.overdue)
	}
	b.mu.Unlock()
	select {
	case r := <-p.done:
		return r
	case <-ctx.Done():
		// Queued or on the wire: it may still be applied.
		return internalReply{Status: replyUnknown}
	}
}

// send takes the queue, sends it, answers its writers, and goes on until the queue is empty.
// While more than maxForwardCalls calls are out, a sender that is done stops unless the
// queue's oldest write is overdue.
func (b *forwardBatcher) send() {
	for first := true; ; first = false {
		b.mu.Lock()
		n := b.takeable()
		if n == 0 || !first && b.senders > maxForwardCalls && time.Since(b.queue[0].queued) < maxForwardWait {
			b.senders--
			b.mu.Unlock()
			return
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		replies := b.call(batch)
		for i, p := range batch {
			p.done <- replies[i]
		}
	}
}

// overdue starts one more call if the oldest queued write has waited maxForwardWait, and
// otherwise checks again when it will have.
func (b *forwardBatcher) overdue() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiting = false
	if len(b.queue) == 0 {
		return
	}
	if wait := maxForwardWait - time.Since(b.queue[0].queued); wait > 0 {
		b.waiting = true
		time.AfterFunc(wait, b.overdue)
		return
	}
	if b.senders < maxForwardOverflow {
		b.n.metrics.forwardOver.Inc()
		b.senders++
		go b.send()
	}
}

// takeable is how many queued writes the next call carries: at most maxForwardBatch, and
// at most maxBodyBytes together unless the first alone is larger, so that a call stays
// within the leader's body limit for /internal/ (twice the client limit, plus slack).
func (b *forwardBatcher) takeable() int {
	return takeable(b.queue, func(f *forwarded) []byte { return f.cmd }, maxForwardBatch, b.n.cfg.MaxBodyBytes)
}

// takeable returns how many commands from the front of queue go into one batch: at most
// maxN, and past the first no more than limit bytes of commands in all (a first command
// over the limit goes alone: the limit bounds batching, not commands).
func takeable[T any](queue []T, cmd func(T) []byte, maxN, limit int) int {
	size := 0
	for i, q := range queue {
		size += len(cmd(q))
		if i == maxN || i > 0 && size > limit {
			return i
		}
	}
	return len(queue)
}

// call sends one batch to the current leader and returns a reply per command.
func (b *forwardBatcher) call(batch []*forwarded) []internalReply {
	all := func(status uint8) []internalReply {
		out := make([]internalReply, len(batch))
		for i := range out {
			out[i].Status = status
		}
		return out
	}
	leader := b.n.Leader()
	if leader == "" {
		return all(replyNotApplied)
	}
	cmds := make([][]byte, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
	}
	body, err := fsm.EncodeValue(cmds)
	if err != nil {
		return all(replyNotApplied)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.n.cfg.ApplyTimeout.D())
	defer cancel()
	b.n.metrics.forwarded.Add(float64(len(batch)))
	b.n.metrics.forwardBatch.Observe(float64(len(batch)))
	out, err := b.n.forward(ctx, leader, PathPropose, body)
	if err != nil {
		if errors.Is(err, ErrNotSent) {
			return all(replyNotApplied)
		}
		b.n.log.Debug("forward propose batch", "leader", leader, "writes", len(batch), "err", err)
		return all(replyUnknown)
	}
	var replies []internalReply
	if err := fsm.DecodeValue(out, &replies); err != nil || len(replies) != len(batch) {
		return all(replyUnknown)
	}
	for i := range replies {
		if replies[i].Status == replyError {
			replies[i].Err = fmt.Sprintf("leader %s: %s", leader, replies[i].Err)
		}
	}
	return replies
}
