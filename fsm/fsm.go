package fsm

// CONTRACT STUB — replaced by the real implementation. Signatures are the contract.

import (
	"context"
	"io"
	"log/slog"

	"github.com/hashicorp/raft"
)

// Options configures an FSM.
type Options struct {
	Logger *slog.Logger
	// OnCommit, if set, is called after each batch's transaction has committed, with the
	// messages that batch stored, in log order. It must not block for long.
	OnCommit func(msgs []Message)
	// OnUsersDeleted, if set, is called after commit with the uids a batch deleted.
	OnUsersDeleted func(uids []string)
}

// FSM is the replicated state machine over one bbolt file.
type FSM struct{}

// Open opens (or creates) the bbolt file at path.
func Open(path string, opts Options) (*FSM, error) { panic("unimplemented") }

// Close closes the file.
func (f *FSM) Close() error { panic("unimplemented") }

// Apply applies one log entry (raft.FSM).
func (f *FSM) Apply(l *raft.Log) interface{} { panic("unimplemented") }

// ApplyBatch applies entries in one bbolt transaction (raft.BatchingFSM).
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} { panic("unimplemented") }

// Snapshot returns a snapshot of the current state (raft.FSM).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) { panic("unimplemented") }

// Restore replaces the state with a snapshot (raft.FSM).
func (f *FSM) Restore(rc io.ReadCloser) error { panic("unimplemented") }

// AppliedIndex is the last raft index applied (durably recorded in the file).
func (f *FSM) AppliedIndex() uint64 { panic("unimplemented") }

// WaitApplied blocks until AppliedIndex() >= index or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error { panic("unimplemented") }

// User returns one user.
func (f *FSM) User(uid string) (User, bool, error) { panic("unimplemented") }

// Users returns the users that exist among uids, in request order.
func (f *FSM) Users(uids []string) ([]User, error) { panic("unimplemented") }

// AllUIDs returns every registered uid, sorted.
func (f *FSM) AllUIDs() ([]string, error) { panic("unimplemented") }

// Group returns a group or ErrGroupNotFound.
func (f *FSM) Group(groupID string) (Group, error) { panic("unimplemented") }

// GroupMembers returns a group's members sorted by uid, or ErrGroupNotFound.
func (f *FSM) GroupMembers(groupID string) ([]GroupMember, error) { panic("unimplemented") }

// IsGroupMember reports whether uid is a member of groupID.
func (f *FSM) IsGroupMember(groupID, uid string) (bool, error) { panic("unimplemented") }

// JoinedGroups returns the groups uid belongs to, sorted by groupID.
func (f *FSM) JoinedGroups(uid string) ([]Group, error) { panic("unimplemented") }

// Friends returns owner's friends, sorted.
func (f *FSM) Friends(owner string) ([]string, error) { panic("unimplemented") }

// Blacklist returns the uids owner blocked, sorted.
func (f *FSM) Blacklist(owner string) ([]string, error) { panic("unimplemented") }

// NewestSeqs returns uid's conversations (single and its groups') with their max seq.
func (f *FSM) NewestSeqs(uid string) ([]ConversationSeq, error) { panic("unimplemented") }

// PullMessages returns the messages of a conversation with begin <= seq <= end, in seq
// order, at most limit of them.
func (f *FSM) PullMessages(conversationID string, begin, end uint64, limit int) ([]Message, error) {
	panic("unimplemented")
}

// IdempotentResult returns the stored result for an idempotency key, if any.
func (f *FSM) IdempotentResult(key []byte) (*Result, bool, error) { panic("unimplemented") }

// Digest is a hash of the whole replicated state (not the applied index).
func (f *FSM) Digest() (string, error) { panic("unimplemented") }
