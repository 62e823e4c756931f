package fsm

import "encoding/json"

// User is a registered user.
type User struct {
	UID    string
	Name   string
	Icon   string
	Gender int32
	Mobile string
	Birth  string
	Email  string
	Ex     string
	// RegIndex is the registration command's id (its raft index unless packed in a batch;
	// see batch.go), unique over the log. Tokens carry it, so a token dies with
	// its user even if the uid is registered again.
	RegIndex uint64
	// CreateTime is the registration's log time (Unix nanoseconds).
	CreateTime int64
}

// Group is a group's profile.
type Group struct {
	GroupID      string
	Name         string
	Introduction string
	Notification string
	FaceURL      string
	OwnerUID     string
	CreateTime   int64
	MemberCount  int
	Ex           string
	// Status is GroupOK, or GroupDismissed once dismissed: no more sends or changes, the
	// history stays readable by its members.
	Status int32
}

// Group statuses (OpenIM's numbers).
const (
	GroupOK        int32 = 0
	GroupDismissed int32 = 2
)

// Group roles.
const (
	RoleMember int32 = 0
	RoleOwner  int32 = 1
	RoleAdmin  int32 = 2
)

// GroupMember is one member of a group.
type GroupMember struct {
	GroupID  string
	UID      string
	Role     int32
	JoinTime int64
	// MuteEnd is when the member's mute ends (log time, Unix nanoseconds); 0 if never muted.
	MuteEnd int64
}

// Session types.
const (
	SessionSingle int32 = 1
	SessionGroup  int32 = 2
)

// Message is a stored message.
type Message struct {
	ConversationID string
	Seq            uint64
	MsgID          string
	SendID         string
	RecvID         string
	SenderNickName string
	SenderFaceURL  string
	SessionType    int32
	ContentType    int32
	Content        []byte
	ForceList      []string
	// SendTime is Unix nanoseconds from the log entry, never decreasing in a conversation.
	SendTime int64
	// Revoked is set by RevokeMessage, which also replaces ContentType and Content by the
	// revoke marker (ContentRevoked, RevokeContent); Seq and MsgID stay.
	Revoked    bool
	RevokerUID string
	// RevokeTime is the revoke's log time (Unix nanoseconds).
	RevokeTime int64
}

// ContentRevoked is the contentType of a revoked message (OpenIM's revoke notification
// number). Clients cannot send it; RevokeMessage puts it in place of the original.
const ContentRevoked int32 = 2101

// RevokeContent is the content of a revoked message.
type RevokeContent struct {
	RevokerUID string `json:"revokerUid"`
	RevokeTime int64  `json:"revokeTime"`
}

// MessageView is a message as clients see it: the fields of msg/pull_msg_by_seq and of the
// WebSocket "msg" frame. Content is the stored JSON object, passed through as it is.
type MessageView struct {
	ConversationID string          `json:"conversationID"`
	Seq            uint64          `json:"seq"`
	MsgID          string          `json:"msgID"`
	SendID         string          `json:"sendID"`
	RecvID         string          `json:"recvID"`
	SessionType    int32           `json:"sessionType"`
	ContentType    int32           `json:"contentType"`
	Content        json.RawMessage `json:"content"`
	SendTime       int64           `json:"sendTime"`
	SenderNickName string          `json:"senderNickName"`
	SenderFaceURL  string          `json:"senderFaceURL"`
	ForceList      []string        `json:"forceList,omitempty"`
	// Revoked: the content is the revoke marker (contentType ContentRevoked).
	Revoked bool `json:"revoked,omitempty"`
	// Deleted: the user this view is for deleted the message from their own view
	// (DeleteMessages); contentType is 0 and content {}.
	Deleted bool `json:"deleted,omitempty"`
}

// View returns m as clients see it.
func (m *Message) View() MessageView {
	return MessageView{ConversationID: m.ConversationID, Seq: m.Seq, MsgID: m.MsgID,
		SendID: m.SendID, RecvID: m.RecvID, SessionType: m.SessionType,
		ContentType: m.ContentType, Content: m.Content, SendTime: m.SendTime,
		SenderNickName: m.SenderNickName, SenderFaceURL: m.SenderFaceURL, ForceList: m.ForceList,
		Revoked: m.Revoked}
}

// Hide turns v into the view of a message its user deleted: the seq, msgID, sender and
// time stay, so the user's sequence has no gap, the content goes.
func (v *MessageView) Hide() {
	v.Deleted, v.Revoked = true, false
	v.ContentType, v.Content, v.ForceList = 0, json.RawMessage("{}"), nil
}

// ConversationSeq is one conversation of a user with its newest seq and the user's read
// position in it.
type ConversationSeq struct {
	ConversationID string
	MaxSeq         uint64
	HasReadSeq     uint64
	// MinSeq: seqs below it were removed by message retention (0: none was).
	MinSeq uint64
}

// UIDResult is the per-uid outcome of invite and kick: 0 done, -1 not done.
type UIDResult struct {
	UID    string
	Result int32
}

// Result is what Apply returns for every command, and what an idempotency record stores.
// Err is the name of a domain error ("" on success); use Error() to get it back.
type Result struct {
	Err string

	UID            string
	RegIndex       uint64
	GroupID        string
	MsgID          string
	SendTime       int64
	Seq            uint64
	ConversationID string
	Failed         []string
	Results        []UIDResult
	// Replayed is true when the result came from an idempotency record, not a new apply.
	Replayed bool
	// Pruned is how many messages a PruneMessages removed, or records a PruneIdempotency.
	Pruned int
}

// Error returns the domain error the result carries, or nil.
func (r *Result) Error() error {
	if r == nil || r.Err == "" {
		return nil
	}
	if e := ErrorByName(r.Err); e != nil {
		return e
	}
	return ErrInvalidArgument
}

// SingleConversationID is the conversation of two users: si_<a>_<b>, the uids sorted.
func SingleConversationID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "si_" + a + "_" + b
}

// GroupConversationID is a group's conversation: sg_<groupID>.
func GroupConversationID(groupID string) string { return "sg_" + groupID }
