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

// pruneMessages proposes PruneMessages while the oldest stored message is older than the
// retention (see pruneRounds). The leader's clock only decides whether a command is worth
// proposing; what it removes is decided by its entry's log time, the same on every node.
func (n *Node) pruneMessages(retention time.Duration) {
	cmd, err := fsm.Encode(fsm.CmdPruneMessages, nil, fsm.PruneMessages{
		Retention: int64(retention), Limit: fsm.MaxPruneMessages})
	if err != nil {
		n.log.Error("message retention: encode", "err", err)
		return
	}
	expired := func() bool {
		oldest, ok, err := n.fsm.OldestMessageTime()
		if err != nil {
			n.log.Warn("message retention: read the oldest message", "err", err)
			return false
		}
		return ok && oldest < time.Now().Add(-retention).UnixNano()
	}
	if pruned := n.pruneRounds("message retention", cmd, fsm.MaxPruneMessages, expired); pruned > 0 {
		n.log.Info("message retention: removed expired messages", "count", pruned)
	}
}

// pruneRounds proposes cmd, a command of the leader's pruning that removes at most limit
// records, again while one removes its whole limit and worth (if set) says there is more,
// at most maxPruneRounds times; it returns how many records went. what names the work in
// the log.
func (n *Node) pruneRounds(what string, cmd []byte, limit int, worth func() bool) (pruned int) {
	for range maxPruneRounds {
		select {
		case <-n.stop:
			return pruned
		default:
		}
		if worth != nil && !worth() {
			return pruned
		}
		res, err := n.proposeDuty(cmd)
		if err != nil {
			n.log.Warn(what+": propose", "err", err)
			return pruned
		}
		pruned += res.Pruned
		if res.Pruned < limit {
			return pruned
		}
	}
	return pruned
}
