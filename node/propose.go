package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/imnode/imnode/fsm"
)

// Internal paths served by HandleInternal (under /internal/ on the HTTP API).
const (
	// PathPropose takes a batch of commands (msgpack [][]byte) and answers []internalReply.
	PathPropose   = "/internal/propose"
	PathReadIndex = "/internal/read_index"
	PathRemove    = "/internal/remove_server"
	PathStatus    = "/internal/status"
	PathRemoved   = "/internal/removed"
)

// reply statuses of internal calls.
const (
	replyOK         = 0
	replyNotApplied = 1 // not leader, transfer in progress, queue full: certainly not applied
	replyUnknown    = 2 // leadership lost after the entry was appended
	replyError      = 3 // a bug or I/O failure on the leader
)

type internalReply struct {
	Status uint8
	Result *fsm.Result
	Index  uint64
	Last   uint64
	Err    string
}

// outcome sorts raft's errors into "certainly not applied" (safe to retry anywhere) and
// "may have been applied". Model: consul's canRetry.
func notApplied(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress) ||
		errors.Is(err, raft.ErrEnqueueTimeout) || errors.Is(err, raft.ErrNotVoter)
}

// Propose commits cmd (from fsm.Encode) through raft and returns the FSM's result once it
// has been applied on the leader. A follower forwards to the leader. Errors that prove the
// command was not applied are retried until the deadline (ctx or the apply timeout), then
// answered ErrNotApplied. A command with an idempotency key is retried after any error,
// because the FSM applies it at most once; one without a key gets ErrOutcomeUnknown when
// the outcome is ambiguous.
func (n *Node) Propose(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout.D())
	defer cancel()
	_, key, _, err := fsm.Decode(cmd)
	if err != nil {
		return nil, fmt.Errorf("propose: %w", err)
	}
	idempotent := key != nil
	ambiguous := false
	backoff := 5 * time.Millisecond
	for {
		res, status, err := n.proposeOnce(ctx, cmd)
		switch status {
		case replyOK:
			return res, nil
		case replyError:
			return nil, err
		case replyUnknown:
			ambiguous = true
			if !idempotent {
				return nil, ErrOutcomeUnknown
			}
		}
		select {
		case <-ctx.Done():
			if ambiguous {
				return nil, ErrOutcomeUnknown
			}
			return nil, ErrNotApplied
		case <-time.After(backoff):
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

// proposeOnce makes one attempt, locally when leader, else through the known leader.
func (n *Node) proposeOnce(ctx context.Context, cmd []byte) (*fsm.Result, uint8, error) {
	if n.IsLeader() {
		return n.applyLocal(ctx, cmd)
	}
	leader := n.Leader()
	if leader == "" {
		return nil, replyNotApplied, nil
	}
	rep := n.batcher.propose(ctx, cmd)
	if rep.Status == replyError {
		return nil, replyError, errors.New(rep.Err)
	}
	return rep.Result, rep.Status, nil
}

// ConsistentRead returns once this node's FSM reflects every write that completed before
// the call: the leader confirms it still leads and names its commit index (coalesced
// across concurrent readers), and this node waits until it has applied that index.
func (n *Node) ConsistentRead(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReadTimeout.D())
	defer cancel()
	backoff := 5 * time.Millisecond
	for {
		var (
			idx uint64
			err error
		)
		if n.IsLeader() {
			idx, err = n.leaderReads.get(ctx)
		} else {
			idx, err = n.followerReads.get(ctx)
		}
		if err == nil {
			if err = n.waitApplied(ctx, idx); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ErrNotApplied
		case <-time.After(backoff):
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

var errNotLeader = errors.New("not the leader")

// waitApplied returns once the FSM has applied every entry up to index. Raft keeps its
// no-op and barrier entries from the FSM, so a commit index that ends in one is never the
// FSM's applied index: wait until raft has dispatched index, then until the FSM has applied
// the last entry at or below index that it does see.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	if n.fsm.AppliedIndex() >= index {
		return nil
	}
	// One timer for the whole wait: every batch the FSM applies wakes the loop, and a timer
	// made per wake-up would be garbage at the rate of batches times waiting reads.
	tick := time.Millisecond
	timer := time.NewTimer(tick)
	defer timer.Stop()
	for {
		// Taken before the check: a batch applied in between closes this very channel.
		batch := n.fsm.BatchApplied()
		if n.raft.AppliedIndex() >= index {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-batch: // raft dispatched a batch: the FSM entries up to index are most likely among them
		case <-timer.C: // index may be a no-op or barrier entry, which the FSM never sees
			if tick < 10*time.Millisecond {
				tick *= 2
			}
			timer.Reset(tick)
		}
	}
	return n.fsm.WaitApplied(ctx, n.lastFSMEntry(index))
}

// lastFSMEntry is the index of the last command or configuration entry at or below index,
// or the FSM's applied index when there is none above it (or the log was compacted there).
func (n *Node) lastFSMEntry(index uint64) uint64 {
	applied := n.fsm.AppliedIndex()
	var l raft.Log
	for i := index; i > applied; i-- {
		if err := n.logs.GetLog(i, &l); err != nil {
			return applied
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return applied
}

// leaderReadIndex is the read index of the raft paper (§6.4): the commit index, valid once
// the leader has committed an entry of its own term and confirmed with a quorum that it
// still leads.
func (n *Node) leaderReadIndex() (uint64, error) {
	if !n.IsLeader() {
		return 0, errNotLeader
	}
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() != term {
		if err := n.raft.Barrier(n.cfg.ReadTimeout.D()).Error(); err != nil {
			return 0, err
		}
		n.readyTerm.Store(term)
	}
	if !n.pause.suspect(n.pause.now()) {
		idx := n.raft.CommitIndex()
		if err := n.raft.VerifyLeader().Error(); err != nil {
			return 0, err
		}
		// Checked again: a stop during VerifyLeader leaves old replies that it may count.
		if !n.pause.suspect(n.pause.now()) {
			return idx, nil
		}
	}
	// The process stopped recently: VerifyLeader may count replies from before the stop
	// (see pauseguard.go). A barrier commits only with replies sent after it was appended.
	n.metrics.barrierReads.Inc()
	if err := n.raft.Barrier(n.cfg.ReadTimeout.D()).Error(); err != nil {
		return 0, err
	}
	return n.raft.AppliedIndex(), nil
}

// forwardReadIndex asks the leader for its read index.
func (n *Node) forwardReadIndex() (uint64, error) {
	leader := n.Leader()
	if leader == "" {
		return 0, errors.New("no leader known")
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ReadTimeout.D())
	defer cancel()
	body, err := n.forward(ctx, leader, PathReadIndex, nil)
	if err != nil {
		return 0, err
	}
	var rep internalReply
	if err := fsm.DecodeValue(body, &rep); err != nil {
		return 0, err
	}
	if rep.Status != replyOK {
		return 0, fmt.Errorf("leader %s: read index refused (%d %s)", leader, rep.Status, rep.Err)
	}
	return rep.Index, nil
}

// HandleInternal serves a call from another node (the caller has checked the cluster key).
func (n *Node) HandleInternal(path string, body []byte) (int, []byte) {
	var rep internalReply
	switch path {
	case PathPropose:
		var cmds [][]byte
		if err := fsm.DecodeValue(body, &cmds); err != nil || len(cmds) > maxForwardBatch {
			return 400, []byte("a propose batch is msgpack [][]byte of at most 256 commands")
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout.D())
		replies := n.applyBatchIfLeader(ctx, cmds)
		cancel()
		out, err := fsm.EncodeValue(replies)
		if err != nil {
			return 500, []byte(err.Error())
		}
		return 200, out
	case PathReadIndex:
		if !n.IsLeader() {
			rep.Status = replyNotApplied
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ReadTimeout.D())
		idx, err := n.leaderReads.get(ctx)
		cancel()
		if err != nil {
			rep.Status, rep.Err = replyNotApplied, err.Error()
		}
		rep.Index = idx
	case PathRemoved:
		if f := n.onRemoved.Load(); f != nil {
			(*f)()
		}
	case PathStatus:
		rep.Index, rep.Last = n.fsm.AppliedIndex(), n.raft.LastIndex()
	case PathPresence:
		return n.servePresence(body)
	case PathRemove:
		var err error
		if !n.IsLeader() {
			err = ErrNotApplied
		} else {
			err = n.removeLocal(string(body))
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrNotApplied):
			rep.Status, rep.Err = replyNotApplied, err.Error()
		default:
			rep.Status, rep.Err = replyError, err.Error()
		}
	default:
		return 404, []byte("unknown internal path")
	}
	out, err := fsm.EncodeValue(&rep)
	if err != nil {
		return 500, []byte(err.Error())
	}
	return 200, out
}
