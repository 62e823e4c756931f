package httpapi

import (
	"fmt"

	"github.com/imnode/imnode/fsm"
)

// tokenResp is the answer of auth/user_register and auth/user_token.
type tokenResp struct {
	UID         string `json:"uid"`
	Token       string `json:"token"`
	ExpiredTime int64  `json:"expiredTime"`
}

type registerReq struct {
	Secret   string  `json:"secret"`
	Platform int     `json:"platform"`
	UID      string  `json:"uid"`
	Name     *string `json:"name"`
	Icon     string  `json:"icon"`
	Gender   int32   `json:"gender"`
	Mobile   string  `json:"mobile"`
	Birth    string  `json:"birth"`
	Email    string  `json:"email"`
	Ex       string  `json:"ex"`
	// OperationID is not in the spec for this route; when sent, it makes a retry safe.
	OperationID string `json:"operationID"`
}

// checkSecret validates and compares the shared secret of auth/*.
func (s *Server) checkSecret(secret string) error {
	if secret == "" {
		return errArgs("secret is required")
	}
	if err := checkText("secret", secret, maxSecret); err != nil {
		return err
	}
	if !s.secretOK(secret) {
		return errNoPermission("wrong secret")
	}
	return nil
}

func (s *Server) userRegister(r *request) (any, error) {
	var req registerReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := s.checkSecret(req.Secret); err != nil {
		return nil, err
	}
	err := firstErr(
		checkText("operationID", req.OperationID, maxOperationID),
		checkPlatform(req.Platform),
		checkID("uid", req.UID, maxUID),
		checkRequired("name", req.Name),
	)
	if err != nil {
		return nil, err
	}
	err = firstErr(
		checkText("name", *req.Name, maxName),
		checkBytes("icon", req.Icon, maxIcon),
		checkGender(req.Gender),
		checkText("mobile", req.Mobile, maxMobile),
		checkText("birth", req.Birth, maxBirth),
		checkText("email", req.Email, maxEmail),
		checkText("ex", req.Ex, maxEx),
	)
	if err != nil {
		return nil, err
	}
	res, err := s.propose(r, fsm.CmdRegisterUser, fsm.RegisterUser{User: fsm.User{
		UID: req.UID, Name: *req.Name, Icon: req.Icon, Gender: req.Gender,
		Mobile: req.Mobile, Birth: req.Birth, Email: req.Email, Ex: req.Ex,
	}})
	if err != nil {
		return nil, fmt.Errorf("uid %q: %w", req.UID, err)
	}
	tok, exp, err := s.mintToken(req.UID, req.Platform, res.RegIndex)
	if err != nil {
		return nil, err
	}
	return dataResp{tokenResp{UID: req.UID, Token: tok, ExpiredTime: exp}}, nil
}

type userTokenReq struct {
	Secret      string `json:"secret"`
	Platform    int    `json:"platform"`
	UID         string `json:"uid"`
	OperationID string `json:"operationID"`
}

func (s *Server) userToken(r *request) (any, error) {
	var req userTokenReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := s.checkSecret(req.Secret); err != nil {
		return nil, err
	}
	if err := firstErr(checkPlatform(req.Platform), checkID("uid", req.UID, maxUID)); err != nil {
		return nil, err
	}
	// A user registered a moment ago through another node must get its token here.
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	u, ok, err := s.b.FSM().User(req.UID)
	if err != nil {
		return nil, err
	}
	var rv uint64
	switch {
	case ok:
		rv = u.RegIndex
	case s.admins[req.UID]:
		rv = 0 // a configured administrator needs no registration
	default:
		return nil, fmt.Errorf("uid %q: %w", req.UID, fsm.ErrUserNotFound)
	}
	tok, exp, err := s.mintToken(req.UID, req.Platform, rv)
	if err != nil {
		return nil, err
	}
	return dataResp{tokenResp{UID: req.UID, Token: tok, ExpiredTime: exp}}, nil
}
