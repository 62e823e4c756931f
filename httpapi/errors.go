package httpapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/node"
	"github.com/valyala/fasthttp"
)

// Envelope error codes (DESIGN.md §3). The values are the API's contract with its clients
// and never change.
const (
	CodeOK                 = 0
	CodeInternal           = 500  // a bug or I/O failure; the log has the detail
	CodeArgs               = 1001 // malformed JSON, missing, over-long or mistyped field
	CodeNoPermission       = 1002 // wrong secret, or a token that may not do this
	CodeRecordNotFound     = 1004 // a referenced record that is neither a user nor a group
	CodeUserNotFound       = 1101 // a uid that must exist does not
	CodeRegisteredAlready  = 1102 // user_register of a uid that exists
	CodeGroupNotFound      = 1201 // unknown groupID
	CodeNotInGroupYet      = 1203 // group send by a non-member
	CodeGroupDismissed     = 1204 // send to, or change of, a dismissed group
	CodeOwnerMustTransfer  = 1205 // the owner quits without transferring the group
	CodeMutedInGroup       = 1206 // group send by a muted member
	CodeNotFriend          = 1207 // delete_friend of a non-friend
	CodeNotInBlacklist     = 1208 // remove_blacklist of a user not blocked
	CodeOwnerUntouchable   = 1209 // mute or role change of the owner; transfer of a group by a non-owner
	CodeMessageNotFound    = 1210 // no message at that seq: unknown conversation, seq beyond max, removed
	CodeMessageRevoked     = 1211 // revoke of a message that is already revoked
	CodeNoSuchConversation = 1212 // a per-user conversation action on a single chat the user is not in
	CodeCanNotAddYourself  = 1301 // friend or blacklist a user with themselves
	CodeBlockedByPeer      = 1302 // single-chat send to a user who blacklisted the sender
	CodeTokenExpired       = 1501
	CodeTokenInvalid       = 1502
	CodeTokenMalformed     = 1503
	CodeTokenNotExist      = 1507 // no token header, or its user no longer exists
	CodeClusterUnavailable = 1801 // not applied, safe to retry (HTTP 503)
	CodeOutcomeUnknown     = 1802 // may or may not be applied; retry with the same operationID (HTTP 503)
)

// Error is a failed request as the client sees it: the envelope's errCode and errMsg and the
// HTTP status (0 means 200: business outcomes are answered with 200).
type Error struct {
	Code   int
	Status int
	Msg    string
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("errCode %d: %s", e.Code, e.Msg) }

// httpStatus is the status the error is answered with.
func (e *Error) httpStatus() int {
	if e.Status == 0 {
		return fasthttp.StatusOK
	}
	return e.Status
}

func errArgs(format string, a ...any) *Error {
	return &Error{Code: CodeArgs, Msg: fmt.Sprintf(format, a...)}
}

func errNoPermission(format string, a ...any) *Error {
	return &Error{Code: CodeNoPermission, Msg: fmt.Sprintf(format, a...)}
}

// errorTable maps the errors of fsm and node to envelope codes. It is ordered and matched
// with errors.Is, so a wrapped error finds its code and the first match wins.
var errorTable = []struct {
	err    error
	code   int
	status int
}{
	{fsm.ErrInvalidArgument, CodeArgs, 0},
	{fsm.ErrConversationTaken, CodeArgs, 0},
	{fsm.ErrUserNotFound, CodeUserNotFound, 0},
	{fsm.ErrUserExists, CodeRegisteredAlready, 0},
	{fsm.ErrGroupNotFound, CodeGroupNotFound, 0},
	{fsm.ErrNotGroupMember, CodeNotInGroupYet, 0},
	{fsm.ErrSelf, CodeCanNotAddYourself, 0},
	{fsm.ErrBlocked, CodeBlockedByPeer, 0},
	{fsm.ErrRecordNotFound, CodeRecordNotFound, 0},
	{fsm.ErrGroupDismissed, CodeGroupDismissed, 0},
	{fsm.ErrOwnerMustTransfer, CodeOwnerMustTransfer, 0},
	{fsm.ErrMuted, CodeMutedInGroup, 0},
	{fsm.ErrNotFriend, CodeNotFriend, 0},
	{fsm.ErrNotInBlacklist, CodeNotInBlacklist, 0},
	{fsm.ErrOwnerUntouchable, CodeOwnerUntouchable, 0},
	{fsm.ErrNotGroupOwner, CodeOwnerUntouchable, 0},
	{fsm.ErrNoGroupPermission, CodeNoPermission, 0},
	{fsm.ErrMessageNotFound, CodeMessageNotFound, 0},
	{fsm.ErrAlreadyRevoked, CodeMessageRevoked, 0},
	{fsm.ErrRevokeDenied, CodeNoPermission, 0},
	{fsm.ErrConversationNotFound, CodeNoSuchConversation, 0},
	{fsm.ErrSeqBeyondMax, CodeArgs, 0},
	{node.ErrUnknownServer, CodeRecordNotFound, 0},
	{node.ErrNotApplied, CodeClusterUnavailable, fasthttp.StatusServiceUnavailable},
	{node.ErrOutcomeUnknown, CodeOutcomeUnknown, fasthttp.StatusServiceUnavailable},
}

// toError turns any error a handler returns into what the client gets. internal is true
// when the error is not one the API knows: the client gets a generic 500 and the caller
// logs the detail.
func toError(err error) (e *Error, internal bool) {
	if errors.As(err, &e) {
		return e, false
	}
	for _, t := range errorTable {
		if errors.Is(err, t.err) {
			return &Error{Code: t.code, Status: t.status, Msg: err.Error()}, false
		}
	}
	return &Error{Code: CodeInternal, Status: fasthttp.StatusInternalServerError,
		Msg: "internal server error (the server log has the detail)"}, true
}

// afterPropose sorts a deadline of a write: the command may have reached the log, so the
// outcome is unknown unless node said otherwise.
func afterPropose(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		if !errors.Is(err, node.ErrNotApplied) {
			return fmt.Errorf("%w (%v)", node.ErrOutcomeUnknown, err)
		}
	}
	return err
}

// afterRead sorts a deadline of a read barrier: nothing was written, so it is always safe
// to retry.
func afterRead(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		if !errors.Is(err, node.ErrNotApplied) {
			return fmt.Errorf("%w (%v)", node.ErrNotApplied, err)
		}
	}
	return err
}
