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
// (full chunks of 16 msglog keys per conversation), idemlog, convstate (a user's read
// position and options per conversation) and msgdeleted (the seqs a user deleted from their
// view). A key that names two things joins
// them with a NUL byte ("owner\x00friend", "conversationID\x00<big-endian chunk>"), so a
// prefix scan lists one owner's rows in order; uids and groupIDs with a NUL are rejected to
// keep that exact. Values are msgpack (EncodeValue): the records and commands of every
// message write (SendMessage, Message, convRec, Result, a batch's [][]byte) go through a
// hand-written codec (fastcodec.go) that writes the reflection codec's exact bytes, the
// rest through the reflection codec itself. A group message is stored once, not
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
// Close saves that index beside the file (fsm.db.idem) and the next open reads it instead
// of scanning idemlog, if the file is still in the state it was saved for (idemcheckpoint.go).
// PruneIdempotency, proposed periodically by the leader, forgets records older than the
// retention window, oldest first.
//
// PruneMessages, proposed by the leader when messageRetention is set, removes messages
// older than the retention by the entry's log time, a bounded number per entry; each
// conversation keeps MinSeq, below which seqs are gone rather than missing (retention.go).
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
//   - RevokeMessage is global: the stored message is rewritten in place under the same
//     msglog key, with Seq, MsgID, sender and SendTime kept, ContentType ContentRevoked
//     (2101), Content {"revokerUid","revokeTime"} (the log time) and Revoked set, so there
//     is no gap and every replica holds the same marker. The sender may revoke their own
//     message (also after leaving the group); in a group the owner and admins may revoke
//     anyone's; an app administrator (Admin) anything; anyone else ErrRevokeDenied. A
//     revoked message again: ErrAlreadyRevoked. No message at that seq (unknown
//     conversation, seq 0 or beyond the max seq, removed by retention): ErrMessageNotFound.
//     A dismissed group refuses revokes (ErrGroupDismissed), as it refuses other changes.
//     The "revoke" notice goes to both users of a single chat, to all members of a group.
//   - DeleteMessages is per user: it records (msgdeleted) which seqs the user no longer
//     wants to see; the message stays for everyone else. Deleting a deleted seq succeeds.
//   - MarkAsRead never moves a read position back (a lower value succeeds and changes
//     nothing, without a notice); one beyond the max seq is ErrSeqBeyondMax. A single
//     chat's "read_receipt" notice goes to the peer and the reader's own connections, a
//     group's to the reader only.
//   - The per-user commands (DeleteMessages, MarkAsRead, SetConversation) need a
//     conversation of the user: a single chat they sent or received a message in
//     (ErrConversationNotFound otherwise) or a group they are a member of now
//     (ErrGroupNotFound, ErrNotGroupMember). A deleted user's per-user state goes with them.
//   - Unread counts are MaxSeq - HasReadSeq: the user's own sends count until their client
//     marks them read (moving the sender's position on every send would add a random write
//     to the hot path).
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
// or the new one, never a closed file. Restore of a state file token (StateFileToken: node's
// store has already received the stream into a file of its own) checks that the file is
// under the FSM's directory and opens, and renames that file over the database instead of
// copying it. Restore of a reference only checks that the file
// covers it (ErrStateBehindSnapshot if not). A long stream to a follower must not hold up
// Apply: bbolt remaps a file that outgrows its mapping only once every read transaction has
// ended, so the file is opened with 64 GiB of address space reserved (initialMmapSize).
package fsm
