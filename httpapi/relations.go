package httpapi

import (
	"fmt"

	"github.com/imnode/imnode/fsm"
)

// selfAct limits a user token to acting for its own uid.
func selfAct(r *request, field, uid string) error {
	if r.who.Admin || r.who.UID == uid {
		return nil
	}
	return errNoPermission("a user token may act only for itself: %s is %q, the token's user is %q", field, uid, r.who.UID)
}

// decodePair decodes {operationID, ownerUid, uid} of a relation write or read.
func (s *Server) decodePair(r *request, write bool) (blacklistReq, error) {
	var req blacklistReq
	if err := r.decode(&req); err != nil {
		return req, err
	}
	r.opID = req.OperationID
	opCheck := checkText("operationID", req.OperationID, maxOperationID)
	if write {
		opCheck = checkOpID(req.OperationID)
	}
	if err := firstErr(
		opCheck,
		checkID("ownerUid", req.OwnerUID, maxUID),
		checkID("uid", req.UID, maxUID),
		selfAct(r, "ownerUid", req.OwnerUID),
	); err != nil {
		return req, err
	}
	if req.UID == req.OwnerUID {
		return req, fmt.Errorf("ownerUid %q: %w", req.UID, fsm.ErrSelf)
	}
	return req, nil
}

// deleteFriend ends the friendship of ownerUid and uid on both sides.
func (s *Server) deleteFriend(r *request) (any, error) {
	req, err := s.decodePair(r, true)
	if err != nil {
		return nil, err
	}
	if _, err := s.propose(r, fsm.CmdDeleteFriend, fsm.DeleteFriend{OwnerUID: req.OwnerUID, UID: req.UID}); err != nil {
		return nil, fmt.Errorf("%q ends the friendship with %q: %w", req.OwnerUID, req.UID, err)
	}
	return empty{}, nil
}

// removeBlacklist makes ownerUid stop blocking uid.
func (s *Server) removeBlacklist(r *request) (any, error) {
	req, err := s.decodePair(r, true)
	if err != nil {
		return nil, err
	}
	if _, err := s.propose(r, fsm.CmdRemoveBlacklist, fsm.RemoveBlacklist{OwnerUID: req.OwnerUID, UID: req.UID}); err != nil {
		return nil, fmt.Errorf("%q unblocks %q: %w", req.OwnerUID, req.UID, err)
	}
	return empty{}, nil
}

type isFriendResp struct {
	IsFriend bool `json:"isFriend"`
}

// isFriend answers data.isFriend: whether uid is ownerUid's friend.
func (s *Server) isFriend(r *request) (any, error) {
	req, err := s.decodePair(r, false)
	if err != nil {
		return nil, err
	}
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	if err := firstErr(s.userMustExist("ownerUid", req.OwnerUID), s.userMustExist("uid", req.UID)); err != nil {
		return nil, err
	}
	ok, err := s.b.FSM().IsFriend(req.OwnerUID, req.UID)
	if err != nil {
		return nil, err
	}
	return dataResp{isFriendResp{IsFriend: ok}}, nil
}

type friendsInfoReq struct {
	OperationID string   `json:"operationID"`
	OwnerUID    string   `json:"ownerUid"`
	UIDList     []string `json:"uidList"`
}

type friendInfo struct {
	UID        string    `json:"uid"`
	IsFriend   bool      `json:"isFriend"`
	CreateTime int64     `json:"createTime,omitempty"`
	FriendUser *userInfo `json:"friendUser,omitempty"`
}

// getFriendsInfo answers, per uid of uidList in order, whether it is ownerUid's friend and,
// for friends, since when (createTime) and the friend's profile.
func (s *Server) getFriendsInfo(r *request) (any, error) {
	var req friendsInfoReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(
		checkText("operationID", req.OperationID, maxOperationID),
		checkID("ownerUid", req.OwnerUID, maxUID),
		checkIDList("uidList", req.UIDList, maxListLen, maxUID),
		selfAct(r, "ownerUid", req.OwnerUID),
	); err != nil {
		return nil, err
	}
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	if err := s.userMustExist("ownerUid", req.OwnerUID); err != nil {
		return nil, err
	}
	infos, err := s.b.FSM().FriendsInfo(req.OwnerUID, req.UIDList)
	if err != nil {
		return nil, err
	}
	out := make([]friendInfo, len(infos))
	for i, fi := range infos {
		out[i] = friendInfo{UID: fi.UID, IsFriend: fi.IsFriend}
		if fi.IsFriend {
			u := toUserInfo(fi.User)
			out[i].CreateTime, out[i].FriendUser = fi.CreateTime, &u
		}
	}
	return dataResp{out}, nil
}

// accountCheckReq takes the uids as uidList (the spec's name for a uid list, and the
// issue's), or as checkUidList (OpenIM's checkUserIDList style); not both.
type accountCheckReq struct {
	OperationID  string   `json:"operationID"`
	UIDList      []string `json:"uidList"`
	CheckUIDList []string `json:"checkUidList"`
}

type accountStatus struct {
	UserID        string `json:"userID"`
	AccountStatus string `json:"accountStatus"`
}

type accountCheckResp struct {
	Results []accountStatus `json:"results"`
}

// accountCheck answers, per uid in order, "registered" or "unregistered".
func (s *Server) accountCheck(r *request) (any, error) {
	var req accountCheckReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	field, uids := "uidList", req.UIDList
	switch {
	case req.UIDList != nil && req.CheckUIDList != nil:
		return nil, errArgs("give the uids as uidList or as checkUidList, not both")
	case req.CheckUIDList != nil:
		field, uids = "checkUidList", req.CheckUIDList
	}
	if err := firstErr(
		checkText("operationID", req.OperationID, maxOperationID),
		checkIDList(field, uids, maxListLen, maxUID),
	); err != nil {
		return nil, err
	}
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	out := make([]accountStatus, len(uids))
	for i, uid := range uids {
		_, ok, err := s.b.FSM().User(uid)
		if err != nil {
			return nil, err
		}
		out[i] = accountStatus{UserID: uid, AccountStatus: "unregistered"}
		if ok {
			out[i].AccountStatus = "registered"
		}
	}
	return dataResp{accountCheckResp{Results: out}}, nil
}
