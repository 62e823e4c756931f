package fsm

import (
	"bytes"
	"sort"
)

// Message retention.
//
// With messageRetention configured, the leader periodically proposes PruneMessages. Apply
// computes the cutoff from the entry's own log time (txn.now) minus the retention carried in
// the command, so no node's clock enters the state and every replica removes the same
// messages. It walks msglog from its first key, oldest first, removing messages whose
// SendTime is before the cutoff, and stops at the first younger one or after Limit
// removals (the leader proposes again while a command removes its whole Limit).
//
// Within a conversation, later seqs have later msglog keys and SendTime never decreases, so
// what one command removes of a conversation is always a prefix of its seqs: every
// conversation record keeps MinSeq, the lowest seq still stored, and reads treat seqs below
// it as gone (not as a gap). Stopping at the first young message keeps a command's work
// bounded; a message whose log time is behind an older neighbour's (a new leader with a
// slower clock) only delays the removal of the messages after it until it expires too.

// MaxPruneMessages is the most messages one PruneMessages removes, so one log entry (one
// bbolt transaction) stays small however much has expired.
const MaxPruneMessages = 2000

// PruneMessages removes messages sent more than Retention nanoseconds before the entry's
// log time, oldest first, at most Limit of them (0 or above MaxPruneMessages means
// MaxPruneMessages). The result's Pruned says how many went.
type PruneMessages struct {
	Retention int64
	Limit     int
}

func (w *txn) pruneMessages(c *PruneMessages) (*Result, error) {
	if c.Retention <= 0 || w.now == 0 {
		// An entry without log time (written before AppendedAt existed) cannot place the
		// cutoff; nothing is removed rather than everything.
		return &Result{}, nil
	}
	cutoff := w.now - c.Retention
	limit := c.Limit
	if limit <= 0 || limit > MaxPruneMessages {
		limit = MaxPruneMessages
	}
	var keys [][]byte
	minSeq := map[string]uint64{}
	cur := w.msgLog.Cursor()
	for k, v := cur.First(); k != nil && len(keys) < limit; k, v = cur.Next() {
		var m Message
		if err := DecodeValue(v, &m); err != nil {
			return nil, err
		}
		if m.SendTime >= cutoff {
			break
		}
		keys = append(keys, bytes.Clone(k))
		minSeq[m.ConversationID] = max(minSeq[m.ConversationID], m.Seq+1)
	}
	// Deleting under a live cursor can skip keys in bbolt: collect first, then delete.
	for _, k := range keys {
		if err := w.msgLog.Delete(k); err != nil {
			return nil, err
		}
	}
	// Map order is random: conversations are updated in sorted order, although each
	// update touches only its own keys.
	ids := make([]string, 0, len(minSeq))
	for id := range minSeq {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		conv, err := w.getConv(id)
		if err != nil {
			return nil, err
		}
		from := max(conv.MinSeq, 1)
		conv.MinSeq = max(conv.MinSeq, minSeq[id])
		// Chunk n indexes seqs n*seqChunk+1 .. (n+1)*seqChunk: drop the chunks whose seqs
		// are all gone now. The tail stays as it is, whole: its positions are counted from
		// MaxSeq, and reads never look below MinSeq.
		for n := (from - 1) / seqChunk; (n+1)*seqChunk < conv.MinSeq; n++ {
			if err := w.msgIdx.Delete(chunkKey(id, n)); err != nil {
				return nil, err
			}
		}
		if err := put(w.convs, []byte(id), &conv); err != nil {
			return nil, err
		}
	}
	return &Result{Pruned: len(keys)}, nil
}

// MinSeq returns the lowest seq of a conversation that retention has not removed: seqs
// below it are gone for good. It is 0 for a conversation retention never touched (and for
// an unknown one), and MaxSeq+1 when every message of the conversation is gone.
func (f *FSM) MinSeq(conversationID string) (uint64, error) {
	var minSeq uint64
	err := f.view(func(r *txn) error {
		conv, err := r.getConv(conversationID)
		minSeq = conv.MinSeq
		return err
	})
	return minSeq, err
}

// OldestMessageTime returns the SendTime of the first message in storage order, the next
// one retention would consider; ok is false when no message is stored. The leader compares
// it with its own clock only to decide whether proposing PruneMessages is worth a log
// entry: the removal itself goes by log time.
func (f *FSM) OldestMessageTime() (sendTime int64, ok bool, err error) {
	err = f.view(func(r *txn) error {
		k, v := r.msgLog.Cursor().First()
		if k == nil {
			return nil
		}
		var m Message
		if err := DecodeValue(v, &m); err != nil {
			return err
		}
		sendTime, ok = m.SendTime, true
		return nil
	})
	return sendTime, ok, err
}
