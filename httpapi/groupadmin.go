package httpapi

import (
	"fmt"

	"github.com/imnode/imnode/fsm"
)

// The group-management writes act on behalf of the token's user, whose role the FSM checks
// when the entry applies (owner or group admin, depending on the action); an app
// administrator's token may do all of them.

// opUID is the acting user of a group command: "" for an app administrator.
func opUID(r *request) string {
	if r.who.Admin {
		return ""
	}
	return r.who.UID
}

type setGroupInfoReq struct {
	OperationID  string  `json:"operationID"`
	GroupID      string  `json:"groupID"`
	GroupName    *string `json:"groupName"`
	Introduction *string `json:"introduction"`
	Notification *string `json:"notification"`
	FaceURL      *string `json:"faceUrl"`
	Ex           *string `json:"ex"`
}

// setGroupInfo changes the profile fields present in the request (owner, group admin or
// app admin).
func (s *Server) setGroupInfo(r *request) (any, error) {
	var req setGroupInfoReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkOpID(req.OperationID), checkID("groupID", req.GroupID, maxGroupID)); err != nil {
		return nil, err
	}
	if req.GroupName == nil && req.Introduction == nil && req.Notification == nil && req.FaceURL == nil && req.Ex == nil {
		return nil, errArgs("nothing to change: give at least one of groupName, introduction, notification, faceUrl, ex")
	}
	checks := []error{}
	if req.GroupName != nil {
		checks = append(checks, checkID("groupName", *req.GroupName, maxGroupName))
	}
	if req.Introduction != nil {
		checks = append(checks, checkText("introduction", *req.Introduction, maxGroupText))
	}
	if req.Notification != nil {
		checks = append(checks, checkText("notification", *req.Notification, maxGroupText))
	}
	if req.FaceURL != nil {
		checks = append(checks, checkBytes("faceUrl", *req.FaceURL, maxURL))
	}
	if req.Ex != nil {
		checks = append(checks, checkBytes("ex", *req.Ex, maxEx))
	}
	if err := firstErr(checks...); err != nil {
		return nil, err
	}
	_, err := s.propose(r, fsm.CmdSetGroupInfo, fsm.SetGroupInfo{GroupID: req.GroupID, OpUID: opUID(r),
		Name: req.GroupName, Introduction: req.Introduction, Notification: req.Notification, FaceURL: req.FaceURL, Ex: req.Ex})
	if err != nil {
		return nil, fmt.Errorf("groupID %q: %w", req.GroupID, err)
	}
	return empty{}, nil
}

type groupUIDReq struct {
	OperationID string `json:"operationID"`
	GroupID     string `json:"groupID"`
	UID         string `json:"uid"`
}

func (s *Server) decodeGroupUID(r *request) (groupUIDReq, error) {
	var req groupUIDReq
	if err := r.decode(&req); err != nil {
		return req, err
	}
	r.opID = req.OperationID
	return req, firstErr(checkOpID(req.OperationID), checkID("groupID", req.GroupID, maxGroupID), checkID("uid", req.UID, maxUID))
}

// quitGroup makes uid leave the group; a user token may only make itself leave.
func (s *Server) quitGroup(r *request) (any, error) {
	req, err := s.decodeGroupUID(r)
	if err != nil {
		return nil, err
	}
	if err := selfAct(r, "uid", req.UID); err != nil {
		return nil, err
	}
	if _, err := s.propose(r, fsm.CmdQuitGroup, fsm.QuitGroup{GroupID: req.GroupID, UID: req.UID}); err != nil {
		return nil, fmt.Errorf("%q quits group %q: %w", req.UID, req.GroupID, err)
	}
	return empty{}, nil
}

type transferGroupReq struct {
	OperationID string `json:"operationID"`
	GroupID     string `json:"groupID"`
	OldOwnerUID string `json:"oldOwnerUid"`
	NewOwnerUID string `json:"newOwnerUid"`
}

// transferGroup makes newOwnerUid (a member) the owner; the old owner becomes a member.
func (s *Server) transferGroup(r *request) (any, error) {
	var req transferGroupReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(
		checkOpID(req.OperationID),
		checkID("groupID", req.GroupID, maxGroupID),
		checkID("oldOwnerUid", req.OldOwnerUID, maxUID),
		checkID("newOwnerUid", req.NewOwnerUID, maxUID),
		selfAct(r, "oldOwnerUid", req.OldOwnerUID),
	); err != nil {
		return nil, err
	}
	if req.OldOwnerUID == req.NewOwnerUID {
		return nil, fmt.Errorf("newOwnerUid %q: %w: it already owns the group", req.NewOwnerUID, fsm.ErrSelf)
	}
	_, err := s.propose(r, fsm.CmdTransferGroup, fsm.TransferGroup{GroupID: req.GroupID, OpUID: opUID(r),
		OldOwnerUID: req.OldOwnerUID, NewOwnerUID: req.NewOwnerUID})
	if err != nil {
		return nil, fmt.Errorf("transfer group %q to %q: %w", req.GroupID, req.NewOwnerUID, err)
	}
	return empty{}, nil
}

// dismissGroup ends the group (owner or app admin): sends answer 1204 from then on, the
// history stays readable by its members.
func (s *Server) dismissGroup(r *request) (any, error) {
	var req groupReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkOpID(req.OperationID), checkID("groupID", req.GroupID, maxGroupID)); err != nil {
		return nil, err
	}
	if _, err := s.propose(r, fsm.CmdDismissGroup, fsm.DismissGroup{GroupID: req.GroupID, OpUID: opUID(r)}); err != nil {
		return nil, fmt.Errorf("dismiss group %q: %w", req.GroupID, err)
	}
	return empty{}, nil
}

type setGroupMemberInfoReq struct {
	OperationID string `json:"operationID"`
	GroupID     string `json:"groupID"`
	UID         string `json:"uid"`
	RoleLevel   *int32 `json:"roleLevel"`
}

// setGroupMemberInfo sets a member's roleLevel to 0 (member) or 2 (admin); only the owner
// (or an app admin) may, and never on the owner.
func (s *Server) setGroupMemberInfo(r *request) (any, error) {
	var req setGroupMemberInfoReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkOpID(req.OperationID), checkID("groupID", req.GroupID, maxGroupID),
		checkID("uid", req.UID, maxUID), checkRequired("roleLevel", req.RoleLevel)); err != nil {
		return nil, err
	}
	if *req.RoleLevel != fsm.RoleMember && *req.RoleLevel != fsm.RoleAdmin {
		return nil, errArgs("roleLevel must be 0 (member) or 2 (admin), got %d; the owner changes with group/transfer_group", *req.RoleLevel)
	}
	_, err := s.propose(r, fsm.CmdSetGroupMemberInfo, fsm.SetGroupMemberInfo{GroupID: req.GroupID, OpUID: opUID(r),
		UID: req.UID, Role: *req.RoleLevel})
	if err != nil {
		return nil, fmt.Errorf("role of %q in group %q: %w", req.UID, req.GroupID, err)
	}
	return empty{}, nil
}

type muteReq struct {
	OperationID  string `json:"operationID"`
	GroupID      string `json:"groupID"`
	UID          string `json:"uid"`
	MutedSeconds *int64 `json:"mutedSeconds"`
}

// muteGroupMember forbids uid to send to the group for mutedSeconds, counted from the log
// time of the entry (owner, group admin over ordinary members, or app admin).
func (s *Server) muteGroupMember(r *request) (any, error) {
	var req muteReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkOpID(req.OperationID), checkID("groupID", req.GroupID, maxGroupID),
		checkID("uid", req.UID, maxUID), checkRequired("mutedSeconds", req.MutedSeconds)); err != nil {
		return nil, err
	}
	if n := *req.MutedSeconds; n <= 0 || n > fsm.MaxMuteSeconds {
		return nil, errArgs("mutedSeconds must be 1..%d, got %d (cancel a mute with group/cancel_mute_group_member)", fsm.MaxMuteSeconds, n)
	}
	_, err := s.propose(r, fsm.CmdMuteGroupMember, fsm.MuteGroupMember{GroupID: req.GroupID, OpUID: opUID(r),
		UID: req.UID, Seconds: *req.MutedSeconds})
	if err != nil {
		return nil, fmt.Errorf("mute %q in group %q: %w", req.UID, req.GroupID, err)
	}
	return empty{}, nil
}

// cancelMuteGroupMember lets a muted member send again.
func (s *Server) cancelMuteGroupMember(r *request) (any, error) {
	req, err := s.decodeGroupUID(r)
	if err != nil {
		return nil, err
	}
	_, err = s.propose(r, fsm.CmdCancelMuteGroupMember, fsm.CancelMuteGroupMember{GroupID: req.GroupID, OpUID: opUID(r), UID: req.UID})
	if err != nil {
		return nil, fmt.Errorf("unmute %q in group %q: %w", req.UID, req.GroupID, err)
	}
	return empty{}, nil
}

type groupIDListReq struct {
	OperationID string   `json:"operationID"`
	GroupIDList []string `json:"groupIDList"`
}

// getGroupsInfo answers the groups of groupIDList in order. An unknown groupID is 1201
// for an app admin; a user token gets 1002 for any group it is not a member of, whether or
// not it exists (as group/get_group_info).
func (s *Server) getGroupsInfo(r *request) (any, error) {
	var req groupIDListReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkText("operationID", req.OperationID, maxOperationID),
		checkIDList("groupIDList", req.GroupIDList, maxListLen, maxGroupID)); err != nil {
		return nil, err
	}
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	if !r.who.Admin {
		for _, id := range req.GroupIDList {
			in, err := s.b.FSM().IsGroupMember(id, r.who.UID)
			if err != nil {
				return nil, err
			}
			if !in {
				return nil, errNoPermission("a user token may read only groups it is a member of; %q is not in group %q", r.who.UID, id)
			}
		}
	}
	gs, err := s.b.FSM().Groups(req.GroupIDList)
	if err != nil {
		return nil, fmt.Errorf("groupIDList: %w", err)
	}
	out := make([]groupInfo, len(gs))
	for i, g := range gs {
		out[i] = toGroupInfo(g)
	}
	return dataResp{out}, nil
}
