package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/imnode/imnode/fsm"
)

// Command packing on the leader (see fsm/batch.go for how a batch applies).
//
// Every write the leader proposes, its own and those a follower forwarded, goes through one
// queue, and one sender goroutine proposes what is queued as one entry (an fsm.CmdBatch of
// up to maxPackCommands and the body limit; a write alone as itself). It proposes the next
// entry once the previous one is applied (its replies came back), so that one entry is in
// its commit round at a time and the writes that arrive during the round wait and leave
// together in the next. That is group commit aligned with raft's commit round: the raft
// log, its fsyncs, replication and the followers' appends are paid per entry, not per
// write. A quiet cluster sees the same entries as before.
//
// Two things cut the wait short, so that the round does not become the limit when the
// disks are:
//   - once packEarly writes are queued, the next entry leaves as soon as the previous one
//     is written to this node's log (storeSignal sees it pass through StoreLogs), and its
//     commit round overlaps the previous one's: per-entry costs are already small at
//     that size, and waiting longer would only add latency;
//   - after maxPackHold the next entry leaves regardless.
//
// Waiting for the previous entry to be stored only (the rule before) gave entries of ~12
// commands at c = 64 on two cores; waiting for it to be applied gives ~25, and with the
// per-entry work halved the cluster spends less CPU per write (see node/DESIGN.md).
const (
	// maxPackCommands bounds the commands of one entry.
	maxPackCommands = 256
	// packEarly is the queue length at which the next entry stops waiting for the
	// previous one to be applied, and waits only for it to be stored.
	packEarly = 64
	// maxPackHold bounds how long the sender waits for the previous entry before it
	// proposes the next anyway (an entry that never reaches the log, say after a lost
	// leadership, must not hold the queue).
	maxPackHold = 20 * time.Millisecond
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
	running bool
	// unstored holds the first data byte of each proposed entry that has not reached this
	// node's log yet (raft stores the slice given to Apply as the entry's Data).
	unstored map[*byte]struct{}
	// unapplied holds the same for each proposed entry whose replies have not come back.
	unapplied map[*byte]struct{}
	last      time.Time // when the last entry was proposed
	wake      chan struct{}
}

func newPacker(n *Node) *packer {
	return &packer{n: n, unstored: map[*byte]struct{}{}, unapplied: map[*byte]struct{}{}, wake: make(chan struct{}, 1)}
}

func (p *packer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// submit queues cmds together (a forwarded batch stays in one entry when it fits) and
// returns their handles.
func (p *packer) submit(cmds [][]byte) []*packed {
	out := make([]*packed, len(cmds))
	for i, c := range cmds {
		out[i] = &packed{cmd: c, done: make(chan internalReply, 1)}
	}
	if p.n.cfg.Raft.NoCommandPacking {
		for _, w := range out {
			p.propose(w.cmd, []*packed{w})
		}
		return out
	}
	p.mu.Lock()
	p.queue = append(p.queue, out...)
	if !p.running {
		p.running = true
		go p.send()
	}
	p.mu.Unlock()
	return out
}

// stored is called with the entries raft has just written to this node's log.
func (p *packer) stored(logs []*raft.Log) {
	p.mu.Lock()
	n := len(p.unstored)
	for _, l := range logs {
		if n > 0 && l.Type == raft.LogCommand && len(l.Data) > 0 {
			delete(p.unstored, &l.Data[0])
		}
	}
	freed := len(p.unstored) < n
	p.mu.Unlock()
	if freed {
		p.signal()
	}
}

func (p *packer) forget(data []byte) {
	if len(data) == 0 {
		return
	}
	p.mu.Lock()
	delete(p.unstored, &data[0])
	delete(p.unapplied, &data[0])
	p.mu.Unlock()
	p.signal()
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

// send proposes what is queued, an entry at a time, each once the previous one is applied
// (or stored, with packEarly writes queued; or maxPackHold has passed), until the queue is
// empty.
func (p *packer) send() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		if hold := maxPackHold - time.Since(p.last); p.busy() && hold > 0 {
			p.mu.Unlock()
			timer.Reset(hold)
			select {
			case <-p.wake:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		k := p.takeable()
		batch := p.queue[:k:k]
		p.queue = p.queue[k:]
		p.mu.Unlock()
		data, err := packEntry(batch)
		if err != nil {
			answer(batch, allReplies(len(batch), replyError, err))
			continue
		}
		p.mu.Lock()
		p.inFlight(data)
		p.mu.Unlock()
		p.propose(data, batch)
	}
}

// propose hands data, the entry of batch, to raft (recorded in unstored by the caller,
// before Apply: raft may store it before Apply returns) and answers batch once it is
// applied. Apply is never called under p.mu: raft's own loop takes p.mu in stored.
func (p *packer) propose(data []byte, batch []*packed) {
	p.n.metrics.entryCommands.Observe(float64(len(batch)))
	start := time.Now()
	f := p.n.raft.Apply(data, p.n.cfg.ApplyTimeout.D())
	go func() {
		replies := p.n.entryReplies(f, len(batch), start)
		p.forget(data)
		answer(batch, replies)
	}()
}

// busy tells whether the next entry must wait for those in flight (called under p.mu).
func (p *packer) busy() bool {
	if len(p.queue) >= packEarly {
		return len(p.unstored) > 0
	}
	return len(p.unapplied) > 0
}

// inFlight records data, an entry about to be proposed, as neither stored nor applied
// (called under p.mu, before Apply: raft may store it before Apply returns).
func (p *packer) inFlight(data []byte) {
	p.unstored[&data[0]] = struct{}{}
	p.unapplied[&data[0]] = struct{}{}
	p.last = time.Now()
}

// submitOne queues cmd, or proposes it at once when nothing is queued or in flight (a lone
// write then costs no hand-over to the sender goroutine).
func (p *packer) submitOne(cmd []byte) *packed {
	p.mu.Lock()
	if p.running || len(p.queue) > 0 || len(p.unapplied) > 0 || len(cmd) == 0 || p.n.cfg.Raft.NoCommandPacking {
		p.mu.Unlock()
		return p.submit([][]byte{cmd})[0]
	}
	w := &packed{cmd: cmd, done: make(chan internalReply, 1)}
	p.inFlight(cmd)
	p.mu.Unlock()
	p.propose(cmd, []*packed{w})
	return w
}

func answer(batch []*packed, replies []internalReply) {
	for i, w := range batch {
		w.done <- replies[i]
	}
}

func allReplies(n int, status uint8, err error) []internalReply {
	out := make([]internalReply, n)
	for i := range out {
		out[i].Status = status
		if err != nil {
			out[i].Err = err.Error()
		}
	}
	return out
}

// packEntry is the entry of batch: its command alone, or an fsm.CmdBatch of them all.
func packEntry(batch []*packed) ([]byte, error) {
	if len(batch) == 1 {
		if len(batch[0].cmd) == 0 {
			return nil, fmt.Errorf("empty command")
		}
		return batch[0].cmd, nil
	}
	cmds := make([][]byte, len(batch))
	for i, w := range batch {
		cmds[i] = w.cmd
	}
	return fsm.EncodeBatch(cmds)
}

// takeable is how many queued writes the next entry carries: at most maxPackCommands, and
// at most the body limit together unless the first alone is larger.
func (p *packer) takeable() int {
	return takeable(p.queue, func(w *packed) []byte { return w.cmd }, maxPackCommands, p.n.cfg.MaxBodyBytes)
}

// storeSignal tells the packer which entries raft has written to this node's log.
type storeSignal struct {
	raft.LogStore
	p *packer
}

func (s storeSignal) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s storeSignal) StoreLogs(logs []*raft.Log) error {
	err := s.LogStore.StoreLogs(logs)
	if err == nil {
		s.p.stored(logs)
	}
	return err
}

// entryReplies waits for the entry of n commands proposed at start and sorts its outcome
// into a reply per command.
func (n *Node) entryReplies(f raft.ApplyFuture, count int, start time.Time) []internalReply {
	if err := f.Error(); err != nil {
		if notApplied(err) {
			return allReplies(count, replyNotApplied, nil)
		}
		return allReplies(count, replyUnknown, nil)
	}
	n.metrics.commitLatency.Observe(time.Since(start).Seconds())
	var results []*fsm.Result
	switch r := f.Response().(type) {
	case *fsm.Result:
		results = []*fsm.Result{r}
	case fsm.BatchResults:
		results = r
	}
	if len(results) != count {
		return allReplies(count, replyError, fmt.Errorf("apply returned %T for %d commands", f.Response(), count))
	}
	out := make([]internalReply, count)
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
	rep := n.packer.submitOne(cmd).wait(ctx)
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
