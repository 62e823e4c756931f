package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"sort"
	"strings"
)

// Revoke, per-user deletion, read positions and conversation options.
//
// A revoke is global: the stored message is rewritten in place (same msglog key, seq and
// msgID) with the revoke marker, so every replica and every reader sees it revoked and no
// seq is missing. Deletion, read positions and options are per user: they live beside the
// messages, in convstate (uid\x00conversationID) and msgdeleted (uid\x00conversationID\x00
// seq), and change only that user's view.

// RevokeMessage replaces the content of the message at Seq of ConversationID by the revoke
// marker. RevokerUID is the user who revokes; the FSM checks that they may: the sender may
// revoke their own message, a group's owner and admins any message of the group. Admin
// marks an app administrator, who may revoke any message (RevokerUID is then recorded as
// given, registered or not).
type RevokeMessage struct {
	ConversationID string
	Seq            uint64
	RevokerUID     string
	Admin          bool
}

// DeleteMessages removes Seqs of ConversationID from UID's own view: that user's pulls
// answer them as deleted (no content). Other users and the stored message are untouched.
type DeleteMessages struct {
	UID            string
	ConversationID string
	Seqs           []uint64
}

// MaxDeleteSeqs bounds the seqs of one DeleteMessages.
const MaxDeleteSeqs = 1000

// MarkAsRead moves UID's read position in ConversationID up to HasReadSeq. It never goes
// back: a lower or equal value changes nothing and succeeds.
type MarkAsRead struct {
	UID            string
	ConversationID string
	HasReadSeq     uint64
}

// SetConversation sets UID's options for ConversationID; nil fields stay as they are.
type SetConversation struct {
	UID            string
	ConversationID string
	Pinned         *bool
	RecvMsgOpt     *int32
}

// Receive options of a conversation (OpenIM's recvMsgOpt). The server stores them for the
// user's clients; it does not filter pushes by them.
const (
	RecvMsgNormal       int32 = 0 // receive and notify
	RecvMsgNotReceive   int32 = 1 // the client does not want the messages shown
	RecvMsgNotNotifying int32 = 2 // receive without notification (do not disturb)
)

// ConversationInfo is one conversation of a user as Conversations answers it.
type ConversationInfo struct {
	ConversationID string
	SessionType    int32
	MaxSeq         uint64
	HasReadSeq     uint64
	// UnreadCount is MaxSeq - HasReadSeq (never negative). The user's own messages count
	// until they mark them read.
	UnreadCount uint64
	// LastSendTime is the send time of the newest message, 0 without messages.
	LastSendTime int64
	// LastMessage is the newest message as this user sees it (revoked, or deleted for
	// them), nil without messages or when retention removed it.
	LastMessage *MessageView
	Pinned      bool
	RecvMsgOpt  int32
}

// userConvRec is the value of convstate/uid\x00conversationID.
type userConvRec struct {
	HasReadSeq uint64
	Pinned     bool
	RecvMsgOpt int32
}

func (w *txn) getConvState(uid, conversationID string) (userConvRec, error) {
	var st userConvRec
	_, err := get(w.convState, pairKey(uid, conversationID), &st)
	return st, err
}

// deletedKey is uid\x00conversationID\x00 + big-endian seq.
func deletedKey(uid, conversationID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(pairKey(uid, conversationID), 0), seq)
}

// userConversation returns the convs record of a conversation uid takes part in: a single
// chat they sent or received a message in (ErrConversationNotFound otherwise), or the
// conversation of a group they are a member of now (ErrGroupNotFound, ErrNotGroupMember).
func (w *txn) userConversation(uid, conversationID string) (convRec, int32, error) {
	if !validID(uid) || !validID(conversationID) {
		return convRec{}, 0, ErrInvalidArgument
	}
	if !w.userExists(uid) {
		return convRec{}, 0, ErrUserNotFound
	}
	session := SessionSingle
	if groupID, ok := strings.CutPrefix(conversationID, "sg_"); ok {
		if _, err := w.mustGroup(groupID); err != nil {
			return convRec{}, 0, err
		}
		if !has(w.members, pairKey(groupID, uid)) {
			return convRec{}, 0, ErrNotGroupMember
		}
		session = SessionGroup
	} else if !strings.HasPrefix(conversationID, "si_") || !has(w.userConvs, pairKey(uid, conversationID)) {
		return convRec{}, 0, ErrConversationNotFound
	}
	conv, err := w.getConv(conversationID)
	return conv, session, err
}

// conversationUIDs are the users a notice about a conversation goes to: both users of a
// single chat, the members of a group.
func (w *txn) conversationUIDs(m *Message, conv *convRec) []string {
	if m.SessionType == SessionGroup {
		return w.memberUIDs(m.RecvID)
	}
	if len(conv.Pair) == 2 && conv.Pair[0] != conv.Pair[1] {
		return []string{conv.Pair[0], conv.Pair[1]}
	}
	if m.SendID == m.RecvID {
		return []string{m.SendID}
	}
	return []string{m.SendID, m.RecvID}
}

func (w *txn) revokeMessage(c *RevokeMessage) (*Result, error) {
	if !validID(c.ConversationID) || !validID(c.RevokerUID) {
		return nil, ErrInvalidArgument
	}
	if !c.Admin && !w.userExists(c.RevokerUID) {
		return nil, ErrUserNotFound
	}
	conv, err := w.getConv(c.ConversationID)
	if err != nil {
		return nil, err
	}
	key := w.locator(c.ConversationID, &conv).key(c.Seq)
	if key == nil {
		return nil, ErrMessageNotFound
	}
	var m Message
	if ok, err := get(w.msgLog, key, &m); err != nil {
		return nil, err
	} else if !ok || m.ConversationID != c.ConversationID || m.Seq != c.Seq {
		return nil, ErrMessageNotFound
	}
	if m.SessionType == SessionGroup {
		g, err := w.liveGroup(m.RecvID)
		if err != nil {
			return nil, err
		}
		if !c.Admin && c.RevokerUID != m.SendID {
			r, ok, err := w.getMember(g.GroupID, c.RevokerUID)
			if err != nil {
				return nil, err
			}
			if !ok || !mayManage(r.Role) {
				return nil, ErrRevokeDenied
			}
		}
	} else if !c.Admin && c.RevokerUID != m.SendID {
		return nil, ErrRevokeDenied
	}
	if m.Revoked {
		return nil, ErrAlreadyRevoked
	}
	marker, err := json.Marshal(RevokeContent{RevokerUID: c.RevokerUID, RevokeTime: w.now})
	if err != nil {
		return nil, err
	}
	m.Revoked, m.RevokerUID, m.RevokeTime = true, c.RevokerUID, w.now
	m.ContentType, m.Content, m.ForceList = ContentRevoked, marker, nil
	if err := put(w.msgLog, key, &m); err != nil {
		return nil, err
	}
	w.notify(Notice{Type: "revoke", UIDs: w.conversationUIDs(&m, &conv), Fields: map[string]any{
		"conversationID": m.ConversationID, "seq": m.Seq, "msgID": m.MsgID, "sendID": m.SendID,
		"revokerUid": m.RevokerUID, "revokeTime": m.RevokeTime, "sessionType": m.SessionType}})
	return &Result{ConversationID: m.ConversationID, Seq: m.Seq, MsgID: m.MsgID}, nil
}

func (w *txn) deleteMessages(c *DeleteMessages) (*Result, error) {
	if len(c.Seqs) == 0 || len(c.Seqs) > MaxDeleteSeqs {
		return nil, ErrInvalidArgument
	}
	conv, _, err := w.userConversation(c.UID, c.ConversationID)
	if err != nil {
		return nil, err
	}
	for _, seq := range c.Seqs {
		if seq == 0 {
			return nil, ErrInvalidArgument
		}
		if seq > conv.MaxSeq {
			return nil, ErrMessageNotFound
		}
	}
	for _, seq := range c.Seqs {
		k := deletedKey(c.UID, c.ConversationID, seq)
		if has(w.msgDeleted, k) {
			continue
		}
		if err := put(w.msgDeleted, k, w.now); err != nil {
			return nil, err
		}
	}
	w.notify(Notice{Type: "msgs_deleted", UIDs: []string{c.UID}, Fields: map[string]any{
		"conversationID": c.ConversationID, "seqs": c.Seqs}})
	return &Result{ConversationID: c.ConversationID}, nil
}

func (w *txn) markAsRead(c *MarkAsRead) (*Result, error) {
	conv, session, err := w.userConversation(c.UID, c.ConversationID)
	if err != nil {
		return nil, err
	}
	if c.HasReadSeq > conv.MaxSeq {
		return nil, ErrSeqBeyondMax
	}
	st, err := w.getConvState(c.UID, c.ConversationID)
	if err != nil {
		return nil, err
	}
	if c.HasReadSeq <= st.HasReadSeq {
		return &Result{ConversationID: c.ConversationID, Seq: st.HasReadSeq}, nil
	}
	st.HasReadSeq = c.HasReadSeq
	if err := put(w.convState, pairKey(c.UID, c.ConversationID), &st); err != nil {
		return nil, err
	}
	// The peer of a single chat sees the receipt; the reader's own other devices update
	// their unread count. A group's receipt goes to the reader only.
	to := []string{c.UID}
	if session == SessionSingle {
		for _, u := range conv.Pair {
			if u != c.UID {
				to = append([]string{u}, to...)
			}
		}
	}
	w.notify(Notice{Type: "read_receipt", UIDs: to, Fields: map[string]any{
		"conversationID": c.ConversationID, "uid": c.UID, "hasReadSeq": st.HasReadSeq}})
	return &Result{ConversationID: c.ConversationID, Seq: st.HasReadSeq}, nil
}

func (w *txn) setConversation(c *SetConversation) (*Result, error) {
	if c.Pinned == nil && c.RecvMsgOpt == nil {
		return nil, ErrInvalidArgument
	}
	if o := c.RecvMsgOpt; o != nil && (*o < RecvMsgNormal || *o > RecvMsgNotNotifying) {
		return nil, ErrInvalidArgument
	}
	if _, _, err := w.userConversation(c.UID, c.ConversationID); err != nil {
		return nil, err
	}
	st, err := w.getConvState(c.UID, c.ConversationID)
	if err != nil {
		return nil, err
	}
	changed := map[string]any{"conversationID": c.ConversationID}
	if c.Pinned != nil {
		st.Pinned = *c.Pinned
		changed["isPinned"] = st.Pinned
	}
	if c.RecvMsgOpt != nil {
		st.RecvMsgOpt = *c.RecvMsgOpt
		changed["recvMsgOpt"] = st.RecvMsgOpt
	}
	if err := put(w.convState, pairKey(c.UID, c.ConversationID), &st); err != nil {
		return nil, err
	}
	w.notify(Notice{Type: "conversation_changed", UIDs: []string{c.UID}, Fields: changed})
	return &Result{ConversationID: c.ConversationID}, nil
}

// deleteUserConvState removes a deleted user's read positions, options and deletions, so
// that a uid registered again starts afresh.
func (w *txn) deleteUserConvState(uid string) error {
	for _, conv := range suffixes(w.convState, uid) {
		if err := w.convState.Delete(pairKey(uid, conv)); err != nil {
			return err
		}
	}
	var keys [][]byte
	p := prefixKey(uid)
	cur := w.msgDeleted.Cursor()
	for k, _ := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := w.msgDeleted.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// userConversationIDs lists uid's conversations, sorted: the single chats they sent or
// received a message in and the conversations of their groups.
func (r *txn) userConversationIDs(uid string) []string {
	ids := suffixes(r.userConvs, uid)
	for _, groupID := range suffixes(r.userGroups, uid) {
		ids = append(ids, GroupConversationID(groupID))
	}
	sort.Strings(ids)
	return ids
}

// deletedSeqs returns, in order, the seqs in [begin, end] that uid deleted from
// conversationID (the keys sort by seq).
func (r *txn) deletedSeqs(uid, conversationID string, begin, end uint64) []uint64 {
	var out []uint64
	p := append(pairKey(uid, conversationID), 0)
	cur := r.msgDeleted.Cursor()
	for k, _ := cur.Seek(deletedKey(uid, conversationID, begin)); k != nil && bytes.HasPrefix(k, p) && len(k) == len(p)+8; k, _ = cur.Next() {
		seq := binary.BigEndian.Uint64(k[len(p):])
		if seq > end {
			break
		}
		out = append(out, seq)
	}
	return out
}

// DeletedSeqs returns, sorted, the seqs in [begin, end] that uid deleted from their view of
// conversationID (DeleteMessages).
func (f *FSM) DeletedSeqs(uid, conversationID string, begin, end uint64) ([]uint64, error) {
	if !validID(uid) || !validID(conversationID) {
		return nil, nil
	}
	var out []uint64
	err := f.view(func(r *txn) error {
		out = r.deletedSeqs(uid, conversationID, begin, end)
		return nil
	})
	return out, err
}

// Conversations returns uid's conversations (those of NewestSeqs) with the user's read
// position, unread count, options and the newest message as the user sees it: pinned
// ones first, then newest message first (conversations without messages last), then by
// conversationID. An unknown uid has none.
func (f *FSM) Conversations(uid string) ([]ConversationInfo, error) {
	if !validID(uid) {
		return nil, nil
	}
	var out []ConversationInfo
	err := f.view(func(r *txn) error {
		return r.eachConversation(uid, func(id string, conv convRec, st userConvRec) error {
			ci := ConversationInfo{ConversationID: id, SessionType: SessionSingle, MaxSeq: conv.MaxSeq,
				HasReadSeq: st.HasReadSeq, Pinned: st.Pinned, RecvMsgOpt: st.RecvMsgOpt}
			if strings.HasPrefix(id, "sg_") {
				ci.SessionType = SessionGroup
			}
			if conv.MaxSeq > st.HasReadSeq {
				ci.UnreadCount = conv.MaxSeq - st.HasReadSeq
			}
			if conv.MaxSeq > 0 {
				ci.LastSendTime = conv.LastSendTime
				var m Message
				if key := r.locator(id, &conv).key(conv.MaxSeq); key != nil {
					if ok, err := get(r.msgLog, key, &m); err != nil {
						return err
					} else if ok {
						v := m.View()
						if len(r.deletedSeqs(uid, id, conv.MaxSeq, conv.MaxSeq)) > 0 {
							v.Hide()
						}
						ci.LastMessage = &v
					}
				}
			}
			out = append(out, ci)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Pinned != b.Pinned {
			return a.Pinned
		}
		if a.LastSendTime != b.LastSendTime {
			return a.LastSendTime > b.LastSendTime
		}
		return a.ConversationID < b.ConversationID
	})
	return out, err
}

// eachConversation calls fn for each of uid's conversations (userConversationIDs, in its
// order) with the conversation's record and uid's read position and options in it.
func (r *txn) eachConversation(uid string, fn func(id string, conv convRec, st userConvRec) error) error {
	for _, id := range r.userConversationIDs(uid) {
		conv, err := r.getConv(id)
		if err != nil {
			return err
		}
		st, err := r.getConvState(uid, id)
		if err != nil {
			return err
		}
		if err := fn(id, conv, st); err != nil {
			return err
		}
	}
	return nil
}
