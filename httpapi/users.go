package httpapi

import (
	"fmt"

	"github.com/imnode/imnode/fsm"
)

type updateUserReq struct {
	OperationID string `json:"operationID"`
	UID         string `json:"uid"`
	// Pointers: only the fields present in the body change.
	Name   *string `json:"name"`
	Icon   *string `json:"icon"`
	Gender *int32  `json:"gender"`
	Mobile *string `json:"mobile"`
	Birth  *string `json:"birth"`
	Email  *string `json:"email"`
	Ex     *string `json:"ex"`
}

func (s *Server) updateUserInfo(r *request) (any, error) {
	var req updateUserReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	err := firstErr(
		checkOpID(req.OperationID),
		checkID("uid", req.UID, maxUID),
		optional(req.Name, func(v string) error { return checkText("name", v, maxName) }),
		optional(req.Icon, func(v string) error { return checkBytes("icon", v, maxIcon) }),
		optional(req.Gender, checkGender),
		optional(req.Mobile, func(v string) error { return checkText("mobile", v, maxMobile) }),
		optional(req.Birth, func(v string) error { return checkText("birth", v, maxBirth) }),
		optional(req.Email, func(v string) error { return checkText("email", v, maxEmail) }),
		optional(req.Ex, func(v string) error { return checkText("ex", v, maxEx) }),
	)
	if err != nil {
		return nil, err
	}
	_, err = s.propose(r, fsm.CmdUpdateUser, fsm.UpdateUser{
		UID: req.UID, Name: req.Name, Icon: req.Icon, Gender: req.Gender,
		Mobile: req.Mobile, Birth: req.Birth, Email: req.Email, Ex: req.Ex,
	})
	if err != nil {
		return nil, fmt.Errorf("uid %q: %w", req.UID, err)
	}
	return empty{}, nil
}

// optional runs check on a field only when it is present.
func optional[T any](v *T, check func(T) error) error {
	if v == nil {
		return nil
	}
	return check(*v)
}

type deleteUserReq struct {
	OperationID   string   `json:"operationID"`
	DeleteUIDList []string `json:"deleteUidList"`
}

// failedResp is the answer of manager/delete_user and friend/import_friend.
type failedResp struct {
	FailedUIDList []string `json:"failedUidList"`
}

func (s *Server) deleteUser(r *request) (any, error) {
	var req deleteUserReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkOpID(req.OperationID), checkIDList("deleteUidList", req.DeleteUIDList, maxListLen, maxUID)); err != nil {
		return nil, err
	}
	res, err := s.propose(r, fsm.CmdDeleteUsers, fsm.DeleteUsers{UIDs: req.DeleteUIDList})
	if err != nil {
		return nil, err
	}
	return failedResp{FailedUIDList: nonNil(res.Failed)}, nil
}

type uidListReq struct {
	OperationID string   `json:"operationID"`
	UIDList     []string `json:"uidList"`
}

// userInfo is one user of user/get_user_info.
type userInfo struct {
	UID    string `json:"uid"`
	Name   string `json:"name"`
	Icon   string `json:"icon"`
	Gender int32  `json:"gender"`
	Mobile string `json:"mobile"`
	Birth  string `json:"birth"`
	Email  string `json:"email"`
	Ex     string `json:"ex"`
}

// getUserInfo answers the profiles of the uids that exist, in request order; unknown uids
// are left out. Profiles are public: any user token may ask for any uid.
func (s *Server) getUserInfo(r *request) (any, error) {
	var req uidListReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkOpID(req.OperationID), checkIDList("uidList", req.UIDList, maxListLen, maxUID)); err != nil {
		return nil, err
	}
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	users, err := s.b.FSM().Users(req.UIDList)
	if err != nil {
		return nil, err
	}
	out := make([]userInfo, len(users))
	for i, u := range users {
		out[i] = toUserInfo(u)
	}
	return dataResp{out}, nil
}

func toUserInfo(u fsm.User) userInfo {
	return userInfo{UID: u.UID, Name: u.Name, Icon: u.Icon, Gender: u.Gender,
		Mobile: u.Mobile, Birth: u.Birth, Email: u.Email, Ex: u.Ex}
}

type opReq struct {
	OperationID string `json:"operationID"`
}

type uidListResp struct {
	UIDList []string `json:"uidList"`
}

func (s *Server) getAllUsersUID(r *request) (any, error) {
	var req opReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := checkOpID(req.OperationID); err != nil {
		return nil, err
	}
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	uids, err := s.b.FSM().AllUIDs()
	if err != nil {
		return nil, err
	}
	return uidListResp{UIDList: nonNil(uids)}, nil
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

// userMustExist answers 1101 for a uid that is not registered (read routes keyed by uid).
func (s *Server) userMustExist(field, uid string) error {
	_, ok, err := s.b.FSM().User(uid)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s %q: %w", field, uid, fsm.ErrUserNotFound)
	}
	return nil
}

// selfOnly limits a user token to its own uid.
func selfOnly(r *request, field, uid string) error {
	if r.who.Admin || r.who.UID == uid {
		return nil
	}
	return errNoPermission("a user token may read only its own %s (%q), not %q", field, r.who.UID, uid)
}
