package httpapi

import (
	"fmt"

	"github.com/imnode/imnode/fsm"
)

type importFriendReq struct {
	OperationID string `json:"operationID"`
	OwnerUID    string `json:"ownerUid"`
	// UID is the spec's single friend; UIDList is imnode's many friends of one owner.
	// Either or both may be sent.
	UID     string   `json:"uid"`
	UIDList []string `json:"uidList"`
}

// importFriend makes ownerUid mutual friends with uid and/or every uid of uidList. It
// answers failedUidList (the friends that could not be added: unknown users). When only
// the spec's single uid was sent and it failed, the answer is 1101 instead, because the
// spec's answer has no list to report it in.
func (s *Server) importFriend(r *request) (any, error) {
	var req importFriendReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkOpID(req.OperationID), checkID("ownerUid", req.OwnerUID, maxUID)); err != nil {
		return nil, err
	}
	friends := req.UIDList
	if req.UID != "" {
		friends = append([]string{req.UID}, req.UIDList...)
	}
	if len(friends) == 0 {
		return nil, errArgs("uid (or uidList) is required and must not be empty")
	}
	if err := checkIDList("uid and uidList", friends, maxListLen, maxUID); err != nil {
		return nil, err
	}
	for _, f := range friends {
		if f == req.OwnerUID {
			return nil, fmt.Errorf("ownerUid %q: %w", f, errSelfFriend)
		}
	}
	res, err := s.propose(r, fsm.CmdImportFriends, fsm.ImportFriends{OwnerUID: req.OwnerUID, FriendUIDs: friends})
	if err != nil {
		return nil, fmt.Errorf("import friends of %q: %w", req.OwnerUID, err)
	}
	if len(req.UIDList) == 0 && len(res.Failed) > 0 {
		return nil, fmt.Errorf("uid %q: %w", req.UID, fsm.ErrUserNotFound)
	}
	return failedResp{FailedUIDList: nonNil(res.Failed)}, nil
}

// errSelfFriend is fsm.ErrSelf found before proposing.
var errSelfFriend = fmt.Errorf("%w: a user cannot be their own friend", fsm.ErrSelf)

type blacklistReq struct {
	OperationID string `json:"operationID"`
	OwnerUID    string `json:"ownerUid"`
	UID         string `json:"uid"`
}

// addBlacklist makes ownerUid block uid.
func (s *Server) addBlacklist(r *request) (any, error) {
	var req blacklistReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	err := firstErr(
		checkOpID(req.OperationID),
		checkID("ownerUid", req.OwnerUID, maxUID),
		checkID("uid", req.UID, maxUID),
	)
	if err != nil {
		return nil, err
	}
	if req.UID == req.OwnerUID {
		return nil, fmt.Errorf("ownerUid %q: %w: a user cannot block themselves", req.UID, fsm.ErrSelf)
	}
	if _, err := s.propose(r, fsm.CmdAddBlacklist, fsm.AddBlacklist{OwnerUID: req.OwnerUID, UID: req.UID}); err != nil {
		return nil, fmt.Errorf("%q blocks %q: %w", req.OwnerUID, req.UID, err)
	}
	return empty{}, nil
}

type ownerReq struct {
	OperationID string `json:"operationID"`
	OwnerUID    string `json:"ownerUid"`
}

// getFriendList answers data: the owner's friends' uids, sorted.
func (s *Server) getFriendList(r *request) (any, error) {
	return s.ownerList(r, (*fsm.FSM).Friends)
}

// getBlacklist answers data: the uids the owner blocked, sorted.
func (s *Server) getBlacklist(r *request) (any, error) {
	return s.ownerList(r, (*fsm.FSM).Blacklist)
}

func (s *Server) ownerList(r *request, list func(*fsm.FSM, string) ([]string, error)) (any, error) {
	var req ownerReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(
		checkText("operationID", req.OperationID, maxOperationID),
		checkID("ownerUid", req.OwnerUID, maxUID),
		selfOnly(r, "ownerUid", req.OwnerUID),
	); err != nil {
		return nil, err
	}
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	if err := s.userMustExist("ownerUid", req.OwnerUID); err != nil {
		return nil, err
	}
	uids, err := list(s.b.FSM(), req.OwnerUID)
	if err != nil {
		return nil, err
	}
	return dataResp{nonNil(uids)}, nil
}
