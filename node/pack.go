package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/imnode/imnode/fsm"
)

// Command packing on the leader (see fsm/batch.go for how a batch applies).
//
// Every write the leader proposes, its own and those a follower forwarded, goes through one
// queue. At most maxPackInflight entries are in raft at once; while they are, new writes
// wait in the queue, and the next entry packs every write waiting then (up to
// maxPackCommands and the body limit) into one fsm.CmdBatch. A write alone in the queue is
// proposed as it is, so a quiet cluster sees the same entries as before. The raft log, its
// fsyncs, replication and the followers' appends are so paid per entry, not per write.
const (
	// maxPackCommands bounds the commands of one entry.
	maxPackCommands = 256
	// maxPackInflight is how many entries the packer keeps in raft at once.
	maxPackInflight = 4
)

type packed struct {
	cmd  []byte
	done chan internalReply // buffered: the sender never blocks on a caller that gave up
}

// packer queues the leader's writes and proposes them in packed entries.
type packer struct {
	n *Node

	mu      sync.Mutex
	queue   []*packed
	senders int
}

// submit queues cmds together (a forwarded batch stays in one entry when it fits) and
// returns their handles.
func (p *packer) submit(cmds [][]byte) []*packed {
	out := make([]*packed, len(cmds))
	for i, c := range cmds {
		out[i] = &packed{cmd: c, done: make(chan internalReply, 1)}
	}
	p.mu.Lock()
	p.queue = append(p.queue, out...)
	if p.senders < maxPackInflight {
		p.senders++
		go p.send()
	}
	p.mu.Unlock()
	return out
}

// wait returns the reply of w, or replyUnknown once ctx ends (the write may still apply).
func (w *packed) wait(ctx context.Context) internalReply {
	select {
	case r := <-w.done:
		return r
	case <-ctx.Done():
		return internalReply{Status: replyUnknown}
	}
}

// send proposes what is queued, one entry at a time, until the queue is empty.
func (p *packer) send() {
	for {
		p.mu.Lock()
		k := p.takeable()
		if k == 0 {
			p.senders--
			p.mu.Unlock()
			return
		}
		batch := p.queue[:k:k]
		p.queue = p.queue[k:]
		p.mu.Unlock()
		replies := p.n.applyEntry(batch)
		for i, w := range batch {
			w.done <- replies[i]
		}
	}
}

// takeable is how many queued writes the next entry carries: at most maxPackCommands, and
// at most the body limit together unless the first alone is larger.
func (p *packer) takeable() int {
	limit := p.n.cfg.MaxBodyBytes
	size := 0
	for i, w := range p.queue {
		size += len(w.cmd)
		if i == maxPackCommands || i > 0 && size > limit {
			return i
		}
	}
	return len(p.queue)
}

// applyEntry proposes batch as one entry (a command alone as itself) and waits for it.
func (n *Node) applyEntry(batch []*packed) []internalReply {
	out := make([]internalReply, len(batch))
	all := func(status uint8, err error) []internalReply {
		for i := range out {
			out[i].Status = status
			if err != nil {
				out[i].Err = err.Error()
			}
		}
		return out
	}
	data := batch[0].cmd
	if len(batch) > 1 {
		cmds := make([][]byte, len(batch))
		for i, w := range batch {
			cmds[i] = w.cmd
		}
		var err error
		if data, err = fsm.EncodeBatch(cmds); err != nil {
			return all(replyError, err)
		}
	}
	n.metrics.entryCommands.Observe(float64(len(batch)))
	start := time.Now()
	f := n.raft.Apply(data, n.cfg.ApplyTimeout.D())
	if err := f.Error(); err != nil {
		if notApplied(err) {
			return all(replyNotApplied, nil)
		}
		return all(replyUnknown, nil)
	}
	n.metrics.commitLatency.Observe(time.Since(start).Seconds())
	var results []*fsm.Result
	switch r := f.Response().(type) {
	case *fsm.Result:
		results = []*fsm.Result{r}
	case fsm.BatchResults:
		results = r
	}
	if len(results) != len(batch) {
		return all(replyError, fmt.Errorf("apply returned %T for %d commands", f.Response(), len(batch)))
	}
	for i, r := range results {
		if r == nil {
			out[i].Status, out[i].Err = replyError, "apply returned no result"
			continue
		}
		out[i].Status, out[i].Result = replyOK, r
	}
	return out
}

// applyLocal proposes cmd on this (leader) node, packed with the writes beside it, and
// waits for it to be applied.
func (n *Node) applyLocal(ctx context.Context, cmd []byte) (*fsm.Result, uint8, error) {
	rep := n.packer.submit([][]byte{cmd})[0].wait(ctx)
	if rep.Status == replyError {
		return nil, replyError, fmt.Errorf("%s", rep.Err)
	}
	return rep.Result, rep.Status, nil
}

// applyBatchIfLeader proposes the commands of a forwarded batch, packed with the leader's
// own writes, and waits for each. A command that fails fsm.Validate is refused alone.
func (n *Node) applyBatchIfLeader(ctx context.Context, cmds [][]byte) []internalReply {
	out := make([]internalReply, len(cmds))
	if !n.IsLeader() {
		for i := range out {
			out[i].Status = replyNotApplied
		}
		return out
	}
	var good [][]byte
	var at []int
	for i, cmd := range cmds {
		if err := fsm.Validate(cmd); err != nil {
			// Proposed, it would stop every node's FSM (or a batch would nest): refuse it here.
			out[i].Status, out[i].Err = replyError, fmt.Sprintf("refusing a forwarded command: %v", err)
			continue
		}
		if t, _, _, _ := fsm.Decode(cmd); t == fsm.CmdBatch {
			out[i].Status, out[i].Err = replyError, "refusing a forwarded command: a batch is not a command"
			continue
		}
		good = append(good, cmd)
		at = append(at, i)
	}
	if len(good) == 0 {
		return out
	}
	for j, w := range n.packer.submit(good) {
		out[at[j]] = w.wait(ctx)
	}
	return out
}
