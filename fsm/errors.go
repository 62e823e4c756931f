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
	// ErrNotGroupMember: a group send by a non-member.
	ErrNotGroupMember = errors.New("sender is not a member of the group")
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
