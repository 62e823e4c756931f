package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/imnode/imnode/fsm"
)

// newID returns 32 lowercase hex characters from crypto/rand: msgIDs and groupIDs. They
// are made here, never in Apply, so every replica stores the same value.
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

type memberSpec struct {
	UID     string `json:"uid"`
	SetRole int32  `json:"setRole"`
}

type createGroupReq struct {
	OperationID  string       `json:"operationID"`
	MemberList   []memberSpec `json:"memberList"`
	GroupName    string       `json:"groupName"`
	Introduction string       `json:"introduction"`
	Notification string       `json:"notification"`
	FaceURL      string       `json:"faceUrl"`
}

type groupIDResp struct {
	GroupID string `json:"groupID"`
}

// createGroup creates a group with a generated groupID; memberList holds exactly one owner
// (setRole 1), the others are members (0) or admins (2).
func (s *Server) createGroup(r *request) (any, error) {
	var req createGroupReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	err := firstErr(
		checkOpID(req.OperationID),
		checkID("groupName", req.GroupName, maxGroupName),
		checkText("introduction", req.Introduction, maxGroupText),
		checkText("notification", req.Notification, maxGroupText),
		checkBytes("faceUrl", req.FaceURL, maxURL),
	)
	if err != nil {
		return nil, err
	}
	if len(req.MemberList) == 0 {
		return nil, errArgs("memberList is required and must name the group owner (setRole 1)")
	}
	if len(req.MemberList) > maxListLen {
		return nil, errArgs("memberList has %d entries, the limit is %d", len(req.MemberList), maxListLen)
	}
	members := make([]fsm.MemberSpec, len(req.MemberList))
	seen := make(map[string]struct{}, len(req.MemberList))
	owners := 0
	for i, m := range req.MemberList {
		field := "memberList[" + strconv.Itoa(i) + "]"
		if err := checkID(field+".uid", m.UID, maxUID); err != nil {
			return nil, err
		}
		if _, dup := seen[m.UID]; dup {
			return nil, errArgs("memberList lists uid %q twice", m.UID)
		}
		seen[m.UID] = struct{}{}
		switch m.SetRole {
		case fsm.RoleOwner:
			owners++
		case fsm.RoleMember, fsm.RoleAdmin:
		default:
			return nil, errArgs("%s.setRole must be 0 (member), 1 (owner) or 2 (admin), got %d", field, m.SetRole)
		}
		members[i] = fsm.MemberSpec{UID: m.UID, Role: m.SetRole}
	}
	if owners != 1 {
		return nil, errArgs("memberList must have exactly one owner (setRole 1), it has %d", owners)
	}
	res, err := s.propose(r, fsm.CmdCreateGroup, fsm.CreateGroup{
		GroupID: newID(), Name: req.GroupName, Introduction: req.Introduction,
		Notification: req.Notification, FaceURL: req.FaceURL, Members: members,
	})
	if err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	return dataResp{groupIDResp{GroupID: res.GroupID}}, nil
}

type inviteReq struct {
	OperationID string   `json:"operationID"`
	GroupID     string   `json:"groupID"`
	UIDList     []string `json:"uidList"`
	Reason      *string  `json:"reason"`
}

// uidResult is one uid's outcome of invite and kick: 0 done, -1 not done.
type uidResult struct {
	UID    string `json:"uid"`
	Result int32  `json:"result"`
}

func uidResults(l []fsm.UIDResult) dataResp {
	out := make([]uidResult, len(l))
	for i, r := range l {
		out[i] = uidResult{UID: r.UID, Result: r.Result}
	}
	return dataResp{out}
}

func (s *Server) inviteToGroup(r *request) (any, error) {
	var req inviteReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	err := firstErr(
		checkOpID(req.OperationID),
		checkID("groupID", req.GroupID, maxGroupID),
		checkIDList("uidList", req.UIDList, maxListLen, maxUID),
		checkRequired("reason", req.Reason),
	)
	if err != nil {
		return nil, err
	}
	if err := checkText("reason", *req.Reason, maxReason); err != nil {
		return nil, err
	}
	res, err := s.propose(r, fsm.CmdInviteToGroup, fsm.InviteToGroup{GroupID: req.GroupID, UIDs: req.UIDList, Reason: *req.Reason})
	if err != nil {
		return nil, fmt.Errorf("groupID %q: %w", req.GroupID, err)
	}
	return uidResults(res.Results), nil
}

type kickReq struct {
	OperationID string `json:"operationID"`
	GroupID     string `json:"groupID"`
	UIDListInfo []struct {
		UserID string `json:"userId"`
	} `json:"uidListInfo"`
	Reason string `json:"reason"`
}

func (s *Server) kickGroup(r *request) (any, error) {
	var req kickReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkOpID(req.OperationID), checkID("groupID", req.GroupID, maxGroupID), checkText("reason", req.Reason, maxReason)); err != nil {
		return nil, err
	}
	uids := make([]string, len(req.UIDListInfo))
	for i, u := range req.UIDListInfo {
		uids[i] = u.UserID
	}
	if err := checkIDList("uidListInfo.userId", uids, maxListLen, maxUID); err != nil {
		return nil, err
	}
	res, err := s.propose(r, fsm.CmdKickFromGroup, fsm.KickFromGroup{GroupID: req.GroupID, UIDs: uids, Reason: req.Reason})
	if err != nil {
		return nil, fmt.Errorf("groupID %q: %w", req.GroupID, err)
	}
	return uidResults(res.Results), nil
}

type groupReq struct {
	OperationID string `json:"operationID"`
	GroupID     string `json:"groupID"`
}

// groupInfo is a group of group/get_group_info and group/get_joined_group_list.
type groupInfo struct {
	GroupID      string `json:"groupID"`
	GroupName    string `json:"groupName"`
	Introduction string `json:"introduction"`
	Notification string `json:"notification"`
	FaceURL      string `json:"faceUrl"`
	OwnerUID     string `json:"ownerUid"`
	CreateTime   int64  `json:"createTime"`
	MemberCount  int    `json:"memberCount"`
	Ex           string `json:"ex"`
	// Status is 0, or 2 once the group is dismissed (OpenIM's numbers).
	Status int32 `json:"status"`
}

func toGroupInfo(g fsm.Group) groupInfo {
	return groupInfo{GroupID: g.GroupID, GroupName: g.Name, Introduction: g.Introduction,
		Notification: g.Notification, FaceURL: g.FaceURL, OwnerUID: g.OwnerUID,
		CreateTime: g.CreateTime, MemberCount: g.MemberCount, Ex: g.Ex, Status: g.Status}
}

// readGroupReq decodes a {groupID} read, passes the barrier and checks that a user token
// belongs to the group. A user token gets 1002 for a group it is not in, whether or not
// the group exists, so it cannot probe for groups.
func (s *Server) readGroupReq(r *request) (string, error) {
	var req groupReq
	if err := r.decode(&req); err != nil {
		return "", err
	}
	r.opID = req.OperationID
	if err := firstErr(checkText("operationID", req.OperationID, maxOperationID), checkID("groupID", req.GroupID, maxGroupID)); err != nil {
		return "", err
	}
	if err := s.barrier(r); err != nil {
		return "", err
	}
	if r.who.Admin {
		return req.GroupID, nil
	}
	in, err := s.b.FSM().IsGroupMember(req.GroupID, r.who.UID)
	if err != nil && !isGroupNotFound(err) {
		return "", err
	}
	if !in {
		return "", errNoPermission("a user token may read only groups it is a member of; %q is not in group %q", r.who.UID, req.GroupID)
	}
	return req.GroupID, nil
}

func (s *Server) getGroupInfo(r *request) (any, error) {
	id, err := s.readGroupReq(r)
	if err != nil {
		return nil, err
	}
	g, err := s.b.FSM().Group(id)
	if err != nil {
		return nil, fmt.Errorf("groupID %q: %w", id, err)
	}
	return dataResp{toGroupInfo(g)}, nil
}

// memberInfo is one member of group/get_group_member_list.
type memberInfo struct {
	GroupID   string `json:"groupID"`
	UID       string `json:"uid"`
	RoleLevel int32  `json:"roleLevel"`
	JoinTime  int64  `json:"joinTime"`
	// MuteEndTime is when the member's mute ends (Unix ns, log time); 0 if never muted.
	MuteEndTime int64 `json:"muteEndTime"`
}

func (s *Server) getGroupMemberList(r *request) (any, error) {
	id, err := s.readGroupReq(r)
	if err != nil {
		return nil, err
	}
	ms, err := s.b.FSM().GroupMembers(id)
	if err != nil {
		return nil, fmt.Errorf("groupID %q: %w", id, err)
	}
	out := make([]memberInfo, len(ms))
	for i, m := range ms {
		out[i] = memberInfo{GroupID: m.GroupID, UID: m.UID, RoleLevel: m.Role, JoinTime: m.JoinTime, MuteEndTime: m.MuteEnd}
	}
	return dataResp{out}, nil
}

type uidReq struct {
	OperationID string `json:"operationID"`
	UID         string `json:"uid"`
}

// decodeUIDReq decodes a {uid} read of a user's own data and passes the barrier.
func (s *Server) decodeUIDReq(r *request) (string, error) {
	var req uidReq
	if err := r.decode(&req); err != nil {
		return "", err
	}
	r.opID = req.OperationID
	if err := firstErr(
		checkText("operationID", req.OperationID, maxOperationID),
		checkID("uid", req.UID, maxUID),
		selfOnly(r, "uid", req.UID),
	); err != nil {
		return "", err
	}
	if err := s.barrier(r); err != nil {
		return "", err
	}
	return req.UID, s.userMustExist("uid", req.UID)
}

func (s *Server) getJoinedGroupList(r *request) (any, error) {
	uid, err := s.decodeUIDReq(r)
	if err != nil {
		return nil, err
	}
	gs, err := s.b.FSM().JoinedGroups(uid)
	if err != nil {
		return nil, err
	}
	out := make([]groupInfo, len(gs))
	for i, g := range gs {
		out[i] = toGroupInfo(g)
	}
	return dataResp{out}, nil
}

func isGroupNotFound(err error) bool { return errors.Is(err, fsm.ErrGroupNotFound) }
