package fsm

import (
	"bytes"
	"encoding/binary"
	"sort"
	"strings"
)

// MaxPull is the most messages PullMessages returns at once.
const MaxPull = 1000

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
		if !has(w.groups, []byte(c.RecvID)) {
			return nil, ErrGroupNotFound
		}
		if !has(w.members, pairKey(c.RecvID, c.SendID)) {
			return nil, ErrNotGroupMember
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
	if err := put(w.msgs, msgKey(conversationID, m.Seq), &m); err != nil {
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

// NewestSeqs returns uid's conversations (single and its groups') with their max seq.
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
		ids := suffixes(r.userConvs, uid)
		for _, groupID := range suffixes(r.userGroups, uid) {
			ids = append(ids, GroupConversationID(groupID))
		}
		sort.Strings(ids)
		for _, id := range ids {
			conv, err := r.getConv(id)
			if err != nil {
				return err
			}
			out = append(out, ConversationSeq{ConversationID: id, MaxSeq: conv.MaxSeq})
		}
		return nil
	})
	return out, err
}

// PullMessages returns the messages of a conversation with begin <= seq <= end, in seq
// order, at most limit of them.
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
		p := prefixKey(conversationID)
		c := r.msgs.Cursor()
		for k, v := c.Seek(msgKey(conversationID, begin)); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != len(p)+8 || !bytes.HasPrefix(k, p) || binary.BigEndian.Uint64(k[len(p):]) > end {
				break
			}
			var m Message
			if err := DecodeValue(v, &m); err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}
