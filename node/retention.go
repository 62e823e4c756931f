package node

import (
	"context"
	"time"

	"github.com/imnode/imnode/fsm"
)

// maxPruneRounds bounds the PruneMessages (or PruneIdempotency) one tick proposes back to
// back (each removes at most fsm.MaxPruneMessages, or fsm.MaxPrunePerCommand), so a backlog
// is worked off over several ticks without monopolising the log.
const maxPruneRounds = 50

// retentionInterval is how often the leader checks for expired messages: a tenth of the
// retention, between 100 ms and one minute.
func retentionInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, 100*time.Millisecond), time.Minute)
}

// retentionDuties runs while messageRetention is set: on the leader, it proposes
// PruneMessages whenever the oldest stored message is older than the retention.
func (n *Node) retentionDuties() {
	defer n.wg.Done()
	retention := n.cfg.MessageRetention.D()
	if retention <= 0 {
		return
	}
	n.everyAsLeader(retentionInterval(retention), func() { n.pruneMessages(retention) })
}

// proposeDuty proposes a command of the leader's periodic work, giving up after applyTimeout
// or when the node stops: Shutdown waits for the duties, and must not wait out a propose
// without quorum.
func (n *Node) proposeDuty(cmd []byte) (*fsm.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout.D())
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return n.Propose(ctx, cmd)
}

// pruneMessages proposes PruneMessages until a command removes less than its limit (nothing
// more has expired) or maxPruneRounds were proposed. The leader's clock only decides whether
// a command is worth proposing; what it removes is decided by its entry's log time, the
// same on every node.
func (n *Node) pruneMessages(retention time.Duration) {
	for range maxPruneRounds {
		select {
		case <-n.stop:
			return
		default:
		}
		oldest, ok, err := n.fsm.OldestMessageTime()
		if err != nil {
			n.log.Warn("message retention: read the oldest message", "err", err)
			return
		}
		if !ok || oldest >= time.Now().Add(-retention).UnixNano() {
			return
		}
		cmd, err := fsm.Encode(fsm.CmdPruneMessages, nil, fsm.PruneMessages{
			Retention: int64(retention), Limit: fsm.MaxPruneMessages})
		if err != nil {
			n.log.Error("message retention: encode", "err", err)
			return
		}
		res, err := n.proposeDuty(cmd)
		if err != nil {
			n.log.Warn("message retention: propose", "err", err)
			return
		}
		if res.Pruned > 0 {
			n.log.Info("message retention: removed expired messages", "count", res.Pruned)
		}
		if res.Pruned < fsm.MaxPruneMessages {
			return
		}
	}
}
