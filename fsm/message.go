package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// MaxPull is the most messages PullMessages returns at once.
const MaxPull = 1000

// Message storage.
//
// A message is stored once, in msglog under the id of its send (its raft index unless it
// was packed in a batch; see batch.go): keys only grow, so
// a commit appends its messages to a few shared pages at the end of the bucket. Keyed by
// conversation and seq instead, each message of a commit landed on its own conversation's
// page (1,000 busy conversations, 1,000 pages). A conversation finds its messages through
// msglog keys: those of the newest, incomplete chunk of seqChunk seqs are in its convs
// record (Tail), which every send rewrites anyway for MaxSeq; a full chunk moves to msgidx,
// one write per seqChunk messages.
const seqChunk = 16

func (w *txn) sendMessage(c *SendMessage) (*Result, error) {
	if !validID(c.SendID) || !validID(c.RecvID) {
		return nil, ErrInvalidArgument
	}
	var conversationID string
	switch c.SessionType {
	case SessionSingle:
		if !w.userExists(c.SendID) || !w.userExists(c.RecvID) {
			return nil, ErrUserNotFound
		}
		if has(w.blacklist, pairKey(c.RecvID, c.SendID)) {
			return nil, ErrBlocked
		}
		conversationID = SingleConversationID(c.SendID, c.RecvID)
	case SessionGroup:
		if !w.userExists(c.SendID) {
			return nil, ErrUserNotFound
		}
		g, ok, err := w.getGroup(c.RecvID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrGroupNotFound
		}
		if g.Status == GroupDismissed {
			return nil, ErrGroupDismissed
		}
		m, ok, err := w.getMember(c.RecvID, c.SendID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNotGroupMember
		}
		if w.now < m.MuteEnd {
			return nil, ErrMuted
		}
		conversationID = GroupConversationID(c.RecvID)
	default:
		return nil, ErrInvalidArgument
	}
	conv, err := w.getConv(conversationID)
	if err != nil {
		return nil, err
	}
	if c.SessionType == SessionSingle {
		pair := []string{c.SendID, c.RecvID}
		if pair[1] < pair[0] {
			pair[0], pair[1] = pair[1], pair[0]
		}
		switch {
		case conv.MaxSeq == 0 || len(conv.Pair) == 0:
			conv.Pair = pair
		case conv.Pair[0] != pair[0] || conv.Pair[1] != pair[1]:
			return nil, ErrConversationTaken
		}
	}
	// Seq is gap-free because only Apply assigns it; sendTime never goes back even if the
	// log time does (a new leader's clock may be behind the old one's).
	conv.MaxSeq++
	conv.LastSendTime = max(conv.LastSendTime, w.now)
	m := Message{
		ConversationID: conversationID,
		Seq:            conv.MaxSeq,
		MsgID:          c.MsgID,
		SendID:         c.SendID,
		RecvID:         c.RecvID,
		SenderNickName: c.SenderNickName,
		SenderFaceURL:  c.SenderFaceURL,
		SessionType:    c.SessionType,
		ContentType:    c.ContentType,
		Content:        c.Content,
		ForceList:      c.ForceList,
		SendTime:       conv.LastSendTime,
	}
	// A group message is stored once, under the conversation; members find it through
	// their groups, so a send costs the same for 2 members and for 2,000.
	if err := put(w.msgLog, logKey(w.id), &m); err != nil {
		return nil, err
	}
	if err := w.addToConv(conversationID, &conv, w.id); err != nil {
		return nil, err
	}
	if err := put(w.convs, []byte(conversationID), &conv); err != nil {
		return nil, err
	}
	if c.SessionType == SessionSingle {
		for _, uid := range []string{c.SendID, c.RecvID} {
			k := pairKey(uid, conversationID)
			if has(w.userConvs, k) {
				continue
			}
			if err := put(w.userConvs, k, w.now); err != nil {
				return nil, err
			}
		}
	}
	w.eff.msgs = append(w.eff.msgs, m)
	return &Result{
		MsgID:          m.MsgID,
		SendTime:       m.SendTime,
		Seq:            m.Seq,
		ConversationID: conversationID,
	}, nil
}

// NewestSeqs returns uid's conversations (single and its groups') with their max seq and
// uid's read position in each (MarkAsRead).
//
// Single conversations are those the user has sent or received a message in. Every group
// the user belongs to is listed, with MaxSeq 0 while it has no messages, so a client learns
// of a group conversation as soon as it joins. The list is sorted by ConversationID. An
// unknown uid has no conversations (nil, nil); checking that the user exists is the
// caller's business.
func (f *FSM) NewestSeqs(uid string) ([]ConversationSeq, error) {
	if !validID(uid) {
		return nil, nil
	}
	var out []ConversationSeq
	err := f.view(func(r *txn) error {
		return r.eachConversation(uid, func(id string, conv convRec, st userConvRec) error {
			out = append(out, ConversationSeq{ConversationID: id, MaxSeq: conv.MaxSeq, HasReadSeq: st.HasReadSeq, MinSeq: conv.MinSeq})
			return nil
		})
	})
	return out, err
}

// addToConv records key as the msglog key of conv's newest seq (conv.MaxSeq), moving the
// tail to msgidx when it completes a chunk. The caller stores conv.
func (w *txn) addToConv(conversationID string, conv *convRec, key uint64) error {
	conv.Tail = append(conv.Tail, key)
	if len(conv.Tail) < seqChunk {
		return nil
	}
	chunk := make([]byte, 0, 8*seqChunk)
	for _, k := range conv.Tail {
		chunk = binary.BigEndian.AppendUint64(chunk, k)
	}
	conv.Tail = nil
	return w.msgIdx.Put(chunkKey(conversationID, (conv.MaxSeq-1)/seqChunk), chunk)
}

// PullMessages returns the messages of a conversation with begin <= seq <= end, in seq
// order, at most limit of them. Seqs below the conversation's MinSeq were removed by
// retention (see retention.go) and are skipped: see MinSeq.
//
// A limit <= 0 or above MaxPull means MaxPull; begin 0 means 1.
func (f *FSM) PullMessages(conversationID string, begin, end uint64, limit int) ([]Message, error) {
	if limit <= 0 || limit > MaxPull {
		limit = MaxPull
	}
	if conversationID == "" || strings.IndexByte(conversationID, 0) >= 0 {
		return nil, ErrInvalidArgument
	}
	if begin == 0 {
		begin = 1
	}
	if end < begin {
		return nil, nil
	}
	var out []Message
	err := f.view(func(r *txn) error {
		conv, err := r.getConv(conversationID)
		if err != nil {
			return err
		}
		end = min(end, conv.MaxSeq)
		begin = max(begin, conv.MinSeq) // seqs below MinSeq were removed by retention
		loc := r.locator(conversationID, &conv)
		for seq := begin; seq <= end && len(out) < limit; seq++ {
			key := loc.key(seq)
			if key == nil {
				return fmt.Errorf("conversation %s: no index of seq %d", conversationID, seq)
			}
			var m Message
			if ok, err := get(r.msgLog, key, &m); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("conversation %s: seq %d is missing from msglog", conversationID, seq)
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// msgLocator finds the msglog keys of one conversation's seqs: the newest ones in its convs
// record (Tail), older ones in msgidx chunks. It reads each chunk once however many of its
// seqs are asked for, so a walk over seqs in order costs one Get per seqChunk seqs.
type msgLocator struct {
	r        *txn
	id       string
	conv     *convRec
	tailFrom uint64
	chunk    []byte
	chunkNo  uint64
}

// locator returns a msgLocator over conv, the convs record of conversationID as read in
// this transaction.
func (r *txn) locator(conversationID string, conv *convRec) *msgLocator {
	return &msgLocator{r: r, id: conversationID, conv: conv, tailFrom: conv.MaxSeq - uint64(len(conv.Tail)) + 1}
}

// key returns the msglog key of seq, or nil when the conversation has no such seq (0,
// beyond its max seq) or its index chunk is gone.
func (l *msgLocator) key(seq uint64) []byte {
	if seq == 0 || seq > l.conv.MaxSeq {
		return nil
	}
	if seq >= l.tailFrom {
		return logKey(l.conv.Tail[seq-l.tailFrom])
	}
	if n := (seq - 1) / seqChunk; l.chunk == nil || n != l.chunkNo {
		l.chunk, l.chunkNo = l.r.msgIdx.Get(chunkKey(l.id, n)), n
	}
	at := int((seq-1)%seqChunk) * 8
	if len(l.chunk) < at+8 {
		return nil
	}
	return logKey(binary.BigEndian.Uint64(l.chunk[at:]))
}

// messageKey returns the msglog key of seq in conversationID, or nil when there is no such
// message (unknown conversation, seq 0 or beyond the max seq, index gone). The message
// itself may still be missing from msglog (removed by retention): callers check the Get.
func (r *txn) messageKey(conversationID string, seq uint64) ([]byte, error) {
	conv, err := r.getConv(conversationID)
	if err != nil {
		return nil, err
	}
	return r.locator(conversationID, &conv).key(seq), nil
}

// convertOldMsgs moves the messages of the conversation-ordered layout (files written
// before msglog) into msglog and msgidx, the same way on every replica. The old layout
// kept no raft index, so messages are numbered 1, 2, ... in old key order: each message
// took one raft index at or below the applied index, so later sends (above it) cannot
// collide.
func convertOldMsgs(tx *bolt.Tx) error {
	old := tx.Bucket(bktOldMsgs)
	if old == nil {
		return nil
	}
	w := newTxn(tx, nil)
	var (
		n       uint64
		curConv string
		conv    convRec
	)
	flush := func() error {
		if curConv == "" {
			return nil
		}
		return put(w.convs, []byte(curConv), &conv)
	}
	err := old.ForEach(func(k, v []byte) error {
		i := bytes.IndexByte(k, 0)
		if i <= 0 || len(k) != i+9 {
			return fmt.Errorf("old message key %q is malformed", k)
		}
		if id := string(k[:i]); id != curConv {
			if err := flush(); err != nil {
				return err
			}
			c, err := w.getConv(id)
			if err != nil {
				return err
			}
			curConv, conv = id, c
			// Rebuild the index from seq 1: MaxSeq counts up again to its stored value.
			conv.Tail, conv.MaxSeq = nil, 0
		}
		n++
		if err := w.msgLog.Put(logKey(n), bytes.Clone(v)); err != nil {
			return err
		}
		conv.MaxSeq++
		if seq := binary.BigEndian.Uint64(k[i+1:]); seq != conv.MaxSeq {
			return fmt.Errorf("old messages of %s: seq %d where %d was expected", curConv, seq, conv.MaxSeq)
		}
		return w.addToConv(curConv, &conv, n)
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("convert the old message layout: %w", err)
	}
	return tx.DeleteBucket(bktOldMsgs)
}
