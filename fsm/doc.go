// Package fsm is imnode's replicated state machine: the command types and their codec, the
// raft FSM that applies them to one bbolt file, the read queries, and the domain errors.
//
// # Storage
//
// One bbolt file, one bucket per table: meta (the applied index and the last command id),
// users, friends (both directions), blacklist and its reverse index blockedby, groups,
// members, usergroups, convs (max seq, last send time and the newest msglog keys per
// conversation), userconvs (a user's single chats), msglog (messages by the id of their
// send, which is its raft index unless it was packed in a batch; see batch.go), msgidx
// (full chunks of 16 msglog keys per conversation) and idemlog. A key that names two things joins
// them with a NUL byte ("owner\x00friend", "conversationID\x00<big-endian chunk>"), so a
// prefix scan lists one owner's rows in order; uids and groupIDs with a NUL are rejected to
// keep that exact. Values are msgpack (EncodeValue). A group message is stored once, not
// once per member. Messages and idempotency records go where keys only grow, so a commit
// appends them to a few pages instead of one page per conversation or record (see
// message.go and idempotency.go); files in the older layouts are converted when opened.
//
// # Applying
//
// ApplyBatch applies a raft batch into the open bbolt transaction, which also stores the
// last applied index, so the index can never disagree with the data. With group commit
// (Options.CommitDelay, see commit.go) several batches share that transaction and its one
// fsync; reads and WaitApplied see committed state only. After a restart raft replays its
// log from the last snapshot; entries at or below the stored index are skipped, which is
// what makes the replay harmless, and entries applied but not committed before a crash are
// simply applied again.
//
// Apply is deterministic: time is the log entry's AppendedAt (replicated with the entry),
// generated IDs come in the command, iteration is in bbolt key order, never map order.
// Every appliable command returns a *Result; a business failure is Result.Err (a domain
// error's name) and changes nothing, because each applier checks all its preconditions
// before its first write. An entry that cannot be decoded, an unknown command type without
// IgnoreUnknownFlag, or a failed commit panics: continuing would let this replica diverge.
//
// A CmdBatch entry packs several commands (batch.go): they apply in order in the same
// transaction, each as if alone (its own result, idempotency record and id), all at the
// entry's log time; the entry's result is BatchResults.
//
// # Idempotency
//
// A command may carry a 32-byte key (route + operationID + body, hashed by the proposer).
// The first result for a key, failure included, is stored with the entry's time; a later
// entry with the same key returns that result with Replayed set and applies nothing, also
// within one batch and also on another node after a leader change, since the records are
// replicated state. Records are stored in time order (idemlog: applied time + key), so that
// a commit appends them instead of writing a random page per record; an in-memory index
// (key -> time, rebuilt from idemlog when the file is opened or restored) finds them.
// PruneIdempotency, proposed periodically by the leader, forgets records older than the
// retention window, oldest first.
//
// # Decisions
//
//   - ImportFriends with a single friend uid is all or nothing (ErrSelf, ErrUserNotFound),
//     as the spec's single-uid form answers; with several, the ones that fail go to
//     Result.Failed and the rest are applied.
//   - DeleteUsers lists in Failed the uids that do not exist, and the second occurrence of a
//     uid listed twice. A deleted group owner hands the group to its first admin by uid,
//     else its first member by uid; a group left empty keeps its profile, history and no
//     owner. The deleted user's single-chat index (userconvs) goes, their messages stay.
//   - NewestSeqs lists every group of the user, MaxSeq 0 while it has no messages.
//   - The FSM only sees command and configuration entries (raft keeps no-ops and barriers),
//     so WaitApplied must be given an index the FSM will see.
//
// # Snapshots
//
// Snapshot returns a reference: Persist writes the applied index behind a magic header, not
// the state, since the file is durable and already holds it (the open group is committed
// first). OpenState is the copy: a read transaction whose WriteTo streams a consistent bbolt
// file while Apply goes on; node's snapshot store sends it when raft sends a reference to a
// follower, and backups use it. Restore of a state file writes the stream to a temporary
// file, syncs it, checks that it opens, closes the database and renames the copy over it,
// then reopens it; reads hold a read lock on the database handle, so they see the old state
// or the new one, never a closed file. Restore of a reference only checks that the file
// covers it (ErrStateBehindSnapshot if not). bbolt must remap when the file outgrows its
// mmap, and a remap waits for open read transactions, so a write could stall behind a long
// stream to a follower; the file is opened with 1 GiB of address space reserved so that this
// is rare.
package fsm
