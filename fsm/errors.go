package fsm

import "errors"

// Domain errors: the business outcomes a command or query can end in. They travel between
// nodes (forwarded writes, idempotency records) by name, so names never change.
var (
	// ErrInvalidArgument: the command breaks a rule the FSM checks (for example a group
	// without exactly one owner). httpapi validates first, so this is a last line.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUserNotFound: a uid that must exist does not.
	ErrUserNotFound = errors.New("user not found")
	// ErrUserExists: registering a uid that exists.
	ErrUserExists = errors.New("user already registered")
	// ErrGroupNotFound: unknown groupID.
	ErrGroupNotFound = errors.New("group not found")
	// ErrNotGroupMember: a group send by a non-member, or a quit, transfer, mute or role
	// change that names a user who is not a member.
	ErrNotGroupMember = errors.New("not a member of the group")
	// ErrSelf: befriending or blocking oneself.
	ErrSelf = errors.New("cannot do this with yourself")
	// ErrBlocked: a single-chat send to a user who blacklisted the sender.
	ErrBlocked = errors.New("blocked by the receiver")
	// ErrConversationTaken: a single chat whose conversation ID (si_<a>_<b>) already belongs
	// to another pair of users. The format of DESIGN.md is ambiguous when uids contain "_"
	// ("a_b"+"c" and "a"+"b_c" both give si_a_b_c); refusing the second pair keeps two
	// histories from being merged into one.
	ErrConversationTaken = errors.New("this conversation ID already belongs to another pair of users (uids with '_' can collide)")
	// ErrRecordNotFound: a referenced record that is neither a user nor a group.
	ErrRecordNotFound = errors.New("record not found")
	// ErrGroupDismissed: a send to, or a change of, a dismissed group.
	ErrGroupDismissed = errors.New("the group is dismissed")
	// ErrOwnerMustTransfer: the owner quits a group without transferring it first.
	ErrOwnerMustTransfer = errors.New("the group owner must transfer the group before quitting")
	// ErrMuted: a group send by a member muted until a later log time.
	ErrMuted = errors.New("the sender is muted in this group")
	// ErrNotFriend: ending a friendship that does not exist.
	ErrNotFriend = errors.New("not a friend")
	// ErrNotInBlacklist: unblocking a user who is not blocked.
	ErrNotInBlacklist = errors.New("not in the blacklist")
	// ErrOwnerUntouchable: muting the owner or changing the owner's role (transfer instead).
	ErrOwnerUntouchable = errors.New("the group owner cannot be muted or have the role changed")
	// ErrNotGroupOwner: a transfer whose old owner is not the group's owner.
	ErrNotGroupOwner = errors.New("not the group owner")
	// ErrNoGroupPermission: a member acts beyond their role (a member changes the profile,
	// an admin mutes an admin, a non-owner dismisses).
	ErrNoGroupPermission = errors.New("the user's group role does not allow this")
	// ErrMessageNotFound: no message at that seq of the conversation (unknown conversation,
	// seq 0 or beyond its max seq, or removed by retention).
	ErrMessageNotFound = errors.New("no such message in the conversation")
	// ErrAlreadyRevoked: revoking a message that is revoked.
	ErrAlreadyRevoked = errors.New("the message is already revoked")
	// ErrRevokeDenied: a revoke by someone who is neither the sender nor, in a group, its
	// owner or an admin.
	ErrRevokeDenied = errors.New("only the sender, or the group's owner or an admin, may revoke this message")
	// ErrConversationNotFound: a per-user conversation action on a single chat the user
	// never took part in (or a conversationID that is no conversation).
	ErrConversationNotFound = errors.New("the user has no such conversation")
	// ErrSeqBeyondMax: a read position beyond the conversation's max seq.
	ErrSeqBeyondMax = errors.New("seq is beyond the conversation's max seq")
)

// domainErrors is a slice, not a map, so that ErrorName is deterministic even for an error
// that wraps several sentinels (Apply stores the name, and Apply must not depend on map order).
var domainErrors = []struct {
	name string
	err  error
}{
	{"InvalidArgument", ErrInvalidArgument},
	{"UserNotFound", ErrUserNotFound},
	{"UserExists", ErrUserExists},
	{"GroupNotFound", ErrGroupNotFound},
	{"NotGroupMember", ErrNotGroupMember},
	{"Self", ErrSelf},
	{"ConversationTaken", ErrConversationTaken},
	{"Blocked", ErrBlocked},
	{"RecordNotFound", ErrRecordNotFound},
	{"GroupDismissed", ErrGroupDismissed},
	{"OwnerMustTransfer", ErrOwnerMustTransfer},
	{"Muted", ErrMuted},
	{"NotFriend", ErrNotFriend},
	{"NotInBlacklist", ErrNotInBlacklist},
	{"OwnerUntouchable", ErrOwnerUntouchable},
	{"NotGroupOwner", ErrNotGroupOwner},
	{"NoGroupPermission", ErrNoGroupPermission},
	{"MessageNotFound", ErrMessageNotFound},
	{"AlreadyRevoked", ErrAlreadyRevoked},
	{"RevokeDenied", ErrRevokeDenied},
	{"ConversationNotFound", ErrConversationNotFound},
	{"SeqBeyondMax", ErrSeqBeyondMax},
}

// ErrorName returns the stable name of a domain error, or "" if err is not one.
func ErrorName(err error) string {
	if err == nil {
		return ""
	}
	for _, d := range domainErrors {
		if errors.Is(err, d.err) {
			return d.name
		}
	}
	return ""
}

// ErrorByName returns the domain error with that name, or nil.
func ErrorByName(name string) error {
	for _, d := range domainErrors {
		if d.name == name {
			return d.err
		}
	}
	return nil
}
