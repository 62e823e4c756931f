package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/imnode/imnode/fsm"
)

type sendMsgReq struct {
	OperationID    string          `json:"operationID"`
	SendID         string          `json:"sendID"`
	RecvID         string          `json:"recvID"`
	SenderNickName string          `json:"senderNickName"`
	SenderFaceURL  string          `json:"senderFaceURL"`
	ForceList      []string        `json:"forceList"`
	Content        json.RawMessage `json:"content"`
	ContentType    int32           `json:"contentType"`
	SessionType    int32           `json:"sessionType"`
}

// sendMsgResp is the answer of send_msg: the spec's sendTime (Unix nanoseconds) and msgID,
// plus the message's place in its conversation.
type sendMsgResp struct {
	SendTime       int64  `json:"sendTime"`
	MsgID          string `json:"msgID"`
	Seq            uint64 `json:"seq"`
	ConversationID string `json:"conversationID"`
}

// sendMsg serves manager/send_msg and msg/send_msg (a user sending as itself). It is the
// hot path: one decode of the body, one of the content, one encode of the answer.
func (s *Server) sendMsg(r *request) (any, error) {
	var req sendMsgReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	err := firstErr(
		checkOpID(req.OperationID),
		checkID("sendID", req.SendID, maxUID),
		checkID("recvID", req.RecvID, max(maxUID, maxGroupID)),
		checkText("senderNickName", req.SenderNickName, maxName),
		checkBytes("senderFaceURL", req.SenderFaceURL, maxURL),
		checkOptIDList("forceList", req.ForceList, maxForceList, maxUID),
	)
	if err != nil {
		return nil, err
	}
	if !r.who.Admin && req.SendID != r.who.UID {
		return nil, errNoPermission("a user token may send only as itself: sendID %q is not the token's uid %q", req.SendID, r.who.UID)
	}
	if req.SessionType != fsm.SessionSingle && req.SessionType != fsm.SessionGroup {
		return nil, errArgs("sessionType must be 1 (single chat) or 2 (group chat), got %d", req.SessionType)
	}
	content, err := checkContent(req.ContentType, req.Content)
	if err != nil {
		return nil, err
	}
	res, err := s.propose(r, fsm.CmdSendMessage, fsm.SendMessage{
		MsgID: newID(), SendID: req.SendID, RecvID: req.RecvID,
		SenderNickName: req.SenderNickName, SenderFaceURL: req.SenderFaceURL,
		SessionType: req.SessionType, ContentType: req.ContentType,
		Content: content, ForceList: req.ForceList,
	})
	if err != nil {
		return nil, fmt.Errorf("send from %q to %q: %w", req.SendID, req.RecvID, err)
	}
	return sendMsgResp{SendTime: res.SendTime, MsgID: res.MsgID, Seq: res.Seq, ConversationID: res.ConversationID}, nil
}

// conversationSeq is one conversation of msg/newest_seq.
type conversationSeq struct {
	ConversationID string `json:"conversationID"`
	MaxSeq         uint64 `json:"maxSeq"`
	HasReadSeq     uint64 `json:"hasReadSeq"`
	// MinSeq: seqs below it were removed by message retention (0: none was).
	MinSeq uint64 `json:"minSeq"`
}

type conversationsResp struct {
	Conversations []conversationSeq `json:"conversations"`
}

func (s *Server) newestSeq(r *request) (any, error) {
	uid, err := s.decodeUIDReq(r)
	if err != nil {
		return nil, err
	}
	seqs, err := s.b.FSM().NewestSeqs(uid)
	if err != nil {
		return nil, err
	}
	out := make([]conversationSeq, len(seqs))
	for i, c := range seqs {
		out[i] = conversationSeq{ConversationID: c.ConversationID, MaxSeq: c.MaxSeq, HasReadSeq: c.HasReadSeq, MinSeq: c.MinSeq}
	}
	return dataResp{conversationsResp{Conversations: out}}, nil
}

type pullReq struct {
	OperationID    string  `json:"operationID"`
	ConversationID string  `json:"conversationID"`
	BeginSeq       *uint64 `json:"beginSeq"`
	EndSeq         *uint64 `json:"endSeq"`
	// UID, optional, is whose view to answer: the messages that user deleted
	// (msg/delete_msgs) come back as deleted. A user token always gets its own view.
	UID string `json:"uid"`
}

// pullMsgBySeq answers the messages of a conversation with beginSeq <= seq <= endSeq, in
// seq order, at most maxPullMsgs of them (continue from the last seq + 1). Revoked
// messages carry the revoke marker; those the viewer deleted are marked deleted, without
// content, so the seqs stay gap-free.
func (s *Server) pullMsgBySeq(r *request) (any, error) {
	var req pullReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	err := firstErr(
		checkText("operationID", req.OperationID, maxOperationID),
		checkID("conversationID", req.ConversationID, 3+2*maxUID+1),
		checkRequired("beginSeq", req.BeginSeq),
		checkRequired("endSeq", req.EndSeq),
		checkText("uid", req.UID, maxUID),
	)
	if err != nil {
		return nil, err
	}
	viewer := req.UID
	if !r.who.Admin {
		if viewer != "" && viewer != r.who.UID {
			return nil, errNoPermission("a user token may pull only its own view: uid %q is not the token's uid %q", viewer, r.who.UID)
		}
		viewer = r.who.UID
	}
	if *req.EndSeq < *req.BeginSeq {
		return nil, errArgs("endSeq %d is below beginSeq %d", *req.EndSeq, *req.BeginSeq)
	}
	conv := req.ConversationID
	if !strings.HasPrefix(conv, "si_") && !strings.HasPrefix(conv, "sg_") {
		return nil, errArgs("conversationID must be si_<uid>_<uid> (single chat) or sg_<groupID> (group chat)")
	}
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	listed, err := s.mayReadConversation(r, conv)
	if err != nil {
		return nil, err
	}
	if !listed {
		return dataResp{[]fsm.MessageView{}}, nil
	}
	msgs, err := s.b.FSM().PullMessages(conv, *req.BeginSeq, *req.EndSeq, maxPullMsgs)
	if err != nil {
		return nil, err
	}
	out := make([]fsm.MessageView, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].View()
	}
	if viewer != "" && len(msgs) > 0 {
		deleted, err := s.b.FSM().DeletedSeqs(viewer, conv, msgs[0].Seq, msgs[len(msgs)-1].Seq)
		if err != nil {
			return nil, err
		}
		for i, j := 0, 0; i < len(out) && j < len(deleted); i++ {
			for j < len(deleted) && deleted[j] < out[i].Seq {
				j++
			}
			if j < len(deleted) && deleted[j] == out[i].Seq {
				out[i].Hide()
			}
		}
	}
	return s.withMinSeq(conv, out)
}

// mayReadConversation lets a user token read its own single conversations and those of
// the groups it is a member of now. It reports listed=false for a single conversation
// that is structurally the user's but not among its conversations: uids may contain '_',
// so si_a_b_b names both a with b_b and a_b with b, and only the user's own conversation
// index tells whether it ever took part.
func (s *Server) mayReadConversation(r *request, conv string) (listed bool, err error) {
	if r.who.Admin {
		return true, nil
	}
	uid := r.who.UID
	if groupID, ok := strings.CutPrefix(conv, "sg_"); ok {
		in, err := s.b.FSM().IsGroupMember(groupID, uid)
		if err != nil && !isGroupNotFound(err) {
			return false, err
		}
		if in {
			return true, nil
		}
	} else if isSingleConversationOf(conv, uid) {
		seqs, err := s.b.FSM().NewestSeqs(uid)
		if err != nil {
			return false, err
		}
		for _, c := range seqs {
			if c.ConversationID == conv {
				return true, nil
			}
		}
		return false, nil
	}
	return false, errNoPermission("a user token may read only its own conversations and those of its groups; %q is not one of %q's", conv, uid)
}

// isSingleConversationOf reports whether conv is the single conversation of uid with
// someone. uids may contain '_', so the peer is recovered from both ends and checked by
// rebuilding the ID.
func isSingleConversationOf(conv, uid string) bool {
	if rest, ok := strings.CutPrefix(conv, "si_"+uid+"_"); ok && rest != "" &&
		fsm.SingleConversationID(uid, rest) == conv {
		return true
	}
	if rest, ok := strings.CutSuffix(strings.TrimPrefix(conv, "si_"), "_"+uid); ok && rest != "" &&
		strings.HasPrefix(conv, "si_") && fsm.SingleConversationID(uid, rest) == conv {
		return true
	}
	return false
}
