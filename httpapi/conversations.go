package httpapi

import (
	"fmt"
	"strings"

	"github.com/imnode/imnode/fsm"
)

// Revoke, per-user deletion, read positions and conversation options (issue 11). A user
// token acts for itself; an app administrator's token for anyone. The FSM checks who may
// revoke what and whether the conversation is the user's when the entry applies.

// maxConversationID is the longest conversationID: si_<uid>_<uid>.
const maxConversationID = 3 + 2*maxUID + 1

// checkConversationID checks a required conversationID: si_<uid>_<uid> or sg_<groupID>.
func checkConversationID(id string) error {
	if err := checkID("conversationID", id, maxConversationID); err != nil {
		return err
	}
	if !strings.HasPrefix(id, "si_") && !strings.HasPrefix(id, "sg_") {
		return errArgs("conversationID must be si_<uid>_<uid> (single chat) or sg_<groupID> (group chat), got %q", id)
	}
	return nil
}

type revokeReq struct {
	OperationID    string  `json:"operationID"`
	ConversationID string  `json:"conversationID"`
	Seq            *uint64 `json:"seq"`
	RevokerUID     string  `json:"revokerUid"`
	UID            string  `json:"uid"`
}

type revokeResp struct {
	ConversationID string `json:"conversationID"`
	Seq            uint64 `json:"seq"`
	MsgID          string `json:"msgID"`
}

// revokeMsg replaces a message's content by the revoke marker on every node. The revoker
// is the token's user; an administrator names one in revokerUid (or uid) to act for them,
// with their rights, or names none to revoke as the app administrator (any message).
func (s *Server) revokeMsg(r *request) (any, error) {
	var req revokeReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(
		checkOpID(req.OperationID),
		checkConversationID(req.ConversationID),
		checkRequired("seq", req.Seq),
		checkText("revokerUid", req.RevokerUID, maxUID),
		checkText("uid", req.UID, maxUID),
	); err != nil {
		return nil, err
	}
	if *req.Seq == 0 {
		return nil, errArgs("seq must be 1 or more")
	}
	revoker := req.RevokerUID
	if req.UID != "" {
		if revoker != "" && revoker != req.UID {
			return nil, errArgs("revokerUid %q and uid %q name different users; give one", revoker, req.UID)
		}
		revoker = req.UID
	}
	cmd := fsm.RevokeMessage{ConversationID: req.ConversationID, Seq: *req.Seq, RevokerUID: revoker}
	switch {
	case !r.who.Admin && revoker != "" && revoker != r.who.UID:
		return nil, errNoPermission("a user token may revoke only as itself: revokerUid %q is not the token's uid %q", revoker, r.who.UID)
	case !r.who.Admin:
		cmd.RevokerUID = r.who.UID
	case revoker != "":
		if err := checkID("revokerUid", revoker, maxUID); err != nil {
			return nil, err
		}
	default:
		cmd.RevokerUID, cmd.Admin = r.who.UID, true
	}
	res, err := s.propose(r, fsm.CmdRevokeMessage, cmd)
	if err != nil {
		return nil, fmt.Errorf("%q revokes seq %d of %s: %w", cmd.RevokerUID, *req.Seq, req.ConversationID, err)
	}
	return dataResp{revokeResp{ConversationID: res.ConversationID, Seq: res.Seq, MsgID: res.MsgID}}, nil
}

type deleteMsgsReq struct {
	OperationID    string   `json:"operationID"`
	UID            string   `json:"uid"`
	ConversationID string   `json:"conversationID"`
	Seqs           []uint64 `json:"seqs"`
}

// deleteMsgs removes seqs from uid's own view of the conversation: uid's pulls answer them
// as deleted, everyone else's are unchanged (a global removal is a revoke).
func (s *Server) deleteMsgs(r *request) (any, error) {
	var req deleteMsgsReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	if err := checkUserConv(r, req.OperationID, req.UID, req.ConversationID); err != nil {
		return nil, err
	}
	if len(req.Seqs) == 0 || len(req.Seqs) > fsm.MaxDeleteSeqs {
		return nil, errArgs("seqs must list 1 to %d seqs, got %d", fsm.MaxDeleteSeqs, len(req.Seqs))
	}
	seen := make(map[uint64]bool, len(req.Seqs))
	for i, seq := range req.Seqs {
		if seq == 0 {
			return nil, errArgs("seqs[%d] is 0; seqs start at 1", i)
		}
		if seen[seq] {
			return nil, errArgs("seqs lists %d twice", seq)
		}
		seen[seq] = true
	}
	_, err := s.propose(r, fsm.CmdDeleteMessages, fsm.DeleteMessages{UID: req.UID, ConversationID: req.ConversationID, Seqs: req.Seqs})
	if err != nil {
		return nil, fmt.Errorf("%q deletes from %s: %w", req.UID, req.ConversationID, err)
	}
	return empty{}, nil
}

type markAsReadReq struct {
	OperationID    string  `json:"operationID"`
	UID            string  `json:"uid"`
	ConversationID string  `json:"conversationID"`
	HasReadSeq     *uint64 `json:"hasReadSeq"`
}

type readSeqResp struct {
	ConversationID string `json:"conversationID"`
	HasReadSeq     uint64 `json:"hasReadSeq"`
}

// markAsRead moves uid's read position up to hasReadSeq and answers the position after
// it (a lower hasReadSeq than the current one changes nothing).
func (s *Server) markAsRead(r *request) (any, error) {
	var req markAsReadReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	if err := checkUserConv(r, req.OperationID, req.UID, req.ConversationID,
		checkRequired("hasReadSeq", req.HasReadSeq),
	); err != nil {
		return nil, err
	}
	if *req.HasReadSeq == 0 {
		return nil, errArgs("hasReadSeq must be 1 or more")
	}
	res, err := s.propose(r, fsm.CmdMarkAsRead, fsm.MarkAsRead{UID: req.UID, ConversationID: req.ConversationID, HasReadSeq: *req.HasReadSeq})
	if err != nil {
		return nil, fmt.Errorf("%q marks %s read up to seq %d: %w", req.UID, req.ConversationID, *req.HasReadSeq, err)
	}
	return dataResp{readSeqResp{ConversationID: res.ConversationID, HasReadSeq: res.Seq}}, nil
}

type setConversationReq struct {
	OperationID    string `json:"operationID"`
	UID            string `json:"uid"`
	ConversationID string `json:"conversationID"`
	IsPinned       *bool  `json:"isPinned"`
	RecvMsgOpt     *int32 `json:"recvMsgOpt"`
	DoNotDisturb   *bool  `json:"doNotDisturb"`
}

// setConversation sets uid's options of a conversation, only those present: isPinned,
// recvMsgOpt (0 receive and notify, 1 do not receive, 2 receive without notification) or
// doNotDisturb (true is recvMsgOpt 2, false 0).
func (s *Server) setConversation(r *request) (any, error) {
	var req setConversationReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	if err := checkUserConv(r, req.OperationID, req.UID, req.ConversationID); err != nil {
		return nil, err
	}
	opt := req.RecvMsgOpt
	switch {
	case opt != nil && req.DoNotDisturb != nil:
		return nil, errArgs("give recvMsgOpt or doNotDisturb, not both")
	case opt != nil && (*opt < fsm.RecvMsgNormal || *opt > fsm.RecvMsgNotNotifying):
		return nil, errArgs("recvMsgOpt must be 0 (receive and notify), 1 (do not receive) or 2 (receive without notification), got %d", *opt)
	case req.DoNotDisturb != nil:
		v := fsm.RecvMsgNormal
		if *req.DoNotDisturb {
			v = fsm.RecvMsgNotNotifying
		}
		opt = &v
	}
	if req.IsPinned == nil && opt == nil {
		return nil, errArgs("nothing to change: give at least one of isPinned, recvMsgOpt, doNotDisturb")
	}
	_, err := s.propose(r, fsm.CmdSetConversation, fsm.SetConversation{UID: req.UID, ConversationID: req.ConversationID,
		Pinned: req.IsPinned, RecvMsgOpt: opt})
	if err != nil {
		return nil, fmt.Errorf("%q sets %s: %w", req.UID, req.ConversationID, err)
	}
	return empty{}, nil
}

// conversationInfo is one conversation of conversation/get_all_conversations.
type conversationInfo struct {
	ConversationID    string           `json:"conversationID"`
	SessionType       int32            `json:"sessionType"`
	MaxSeq            uint64           `json:"maxSeq"`
	HasReadSeq        uint64           `json:"hasReadSeq"`
	UnreadCount       uint64           `json:"unreadCount"`
	LatestMsg         *fsm.MessageView `json:"latestMsg"`
	LatestMsgSendTime int64            `json:"latestMsgSendTime"`
	IsPinned          bool             `json:"isPinned"`
	RecvMsgOpt        int32            `json:"recvMsgOpt"`
	DoNotDisturb      bool             `json:"doNotDisturb"`
}

// getAllConversations answers uid's conversations, pinned first, then newest message
// first (see fsm.FSM.Conversations).
func (s *Server) getAllConversations(r *request) (any, error) {
	uid, err := s.decodeUIDReq(r)
	if err != nil {
		return nil, err
	}
	cs, err := s.b.FSM().Conversations(uid)
	if err != nil {
		return nil, err
	}
	out := make([]conversationInfo, len(cs))
	for i, c := range cs {
		out[i] = conversationInfo{ConversationID: c.ConversationID, SessionType: c.SessionType, MaxSeq: c.MaxSeq,
			HasReadSeq: c.HasReadSeq, UnreadCount: c.UnreadCount, LatestMsg: c.LastMessage,
			LatestMsgSendTime: c.LastSendTime, IsPinned: c.Pinned, RecvMsgOpt: c.RecvMsgOpt,
			DoNotDisturb: c.RecvMsgOpt == fsm.RecvMsgNotNotifying}
		if v := out[i].LatestMsg; v != nil && len(v.Content) == 0 {
			v.Content = []byte("{}")
		}
	}
	return dataResp{out}, nil
}

// checkUserConv checks a request that acts on uid's own view of a conversation: its
// operationID, uid and conversationID, then more, then that the token may act for uid.
// It records the operationID for the idempotency key.
func checkUserConv(r *request, opID, uid, conversationID string, more ...error) error {
	r.opID = opID
	checks := append([]error{checkOpID(opID), checkID("uid", uid, maxUID), checkConversationID(conversationID)}, more...)
	return firstErr(append(checks, selfAct(r, "uid", uid))...)
}
