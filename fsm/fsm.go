package fsm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Options configures an FSM.
type Options struct {
	Logger *slog.Logger
	// OnCommit, if set, is called after each batch's transaction has committed, with the
	// messages that batch stored, in log order. It must not block for long.
	OnCommit func(msgs []Message)
	// OnUsersDeleted, if set, is called after commit with the uids a batch deleted.
	OnUsersDeleted func(uids []string)
	// OnNotices, if set, is called after commit with the notices a batch produced (see
	// Notice), in log order, after OnCommit for the same batch.
	OnNotices func(notices []Notice)
	// Awaits, if set, reports whether OnCommit or OnNotices would hand any of msgs or
	// notices to someone now (the gateway: whether one of their recipients is connected to
	// this node). A group none of whose messages and notices is awaited is committed at
	// leisure (see lingerLocked); unset, they always hurry it. It is called with the FSM's
	// transaction lock held, so it must not block or call into the FSM.
	Awaits func(msgs []Message, notices []Notice) bool
	// CommitDelay, if positive, turns on group commit: batches go into one open write
	// transaction, which a background goroutine commits at least once per CommitDelay
	// while there are batches (see commit.go). Zero commits every batch before ApplyBatch
	// returns.
	CommitDelay time.Duration
}

// ErrClosed is returned by reads on an FSM that was closed, or whose file could not be
// reopened after a Restore.
var ErrClosed = errors.New("fsm is closed")

// Bucket names. Keys that combine two IDs separate them with a NUL byte, which is why IDs
// with a NUL are rejected: a prefix scan of "a\x00" then never sees the keys of "a\x00b".
var (
	bktMeta       = []byte("meta")       // "applied", "lastid" -> big-endian uint64
	bktUsers      = []byte("users")      // uid -> User
	bktFriends    = []byte("friends")    // owner\x00friend -> since (both directions)
	bktBlacklist  = []byte("blacklist")  // owner\x00blocked -> since
	bktBlockedBy  = []byte("blockedby")  // blocked\x00owner -> since (reverse index for delete)
	bktGroups     = []byte("groups")     // groupID -> Group
	bktMembers    = []byte("members")    // groupID\x00uid -> memberRec
	bktUserGroups = []byte("usergroups") // uid\x00groupID -> joinTime
	bktConvs      = []byte("convs")      // conversationID -> convRec
	bktUserConvs  = []byte("userconvs")  // uid\x00conversationID -> first send time (single chats)
	bktMsgLog     = []byte("msglog")     // big-endian id of the send (batch.go) -> Message
	bktMsgIdx     = []byte("msgidx")     // conversationID\x00 big-endian chunk -> seqChunk msglog keys
	bktIdemLog    = []byte("idemlog")    // timeKey(appliedAt) + idempotency key -> Result
	bktConvState  = []byte("convstate")  // uid\x00conversationID -> userConvRec (read seq, options)
	bktMsgDeleted = []byte("msgdeleted") // uid\x00conversationID\x00 big-endian seq -> deletion time

	// Layouts before msglog and idemlog, converted when a file is opened.
	bktOldMsgs     = []byte("msgs")     // conversationID\x00 big-endian seq -> Message
	bktOldIdem     = []byte("idem")     // key -> timeKey(appliedAt) + Result
	bktOldIdemTime = []byte("idemtime") // timeKey(appliedAt) + key -> empty

	allBuckets = [][]byte{bktMeta, bktUsers, bktFriends, bktBlacklist, bktBlockedBy, bktGroups,
		bktMembers, bktUserGroups, bktConvs, bktUserConvs, bktMsgLog, bktMsgIdx, bktIdemLog,
		bktConvState, bktMsgDeleted}

	keyApplied = []byte("applied")
)

// maxIDLen bounds uids and groupIDs as a last line behind httpapi's 64, far below bbolt's
// key limit, so a Put can never fail on key size halfway through a command.
const maxIDLen = 256

// initialMmapSize is how much of fsm.db bbolt maps at open: 64 GiB on 64-bit platforms
// (1 GiB on 32-bit ones). It is address space, not memory: pages are only read in when
// used, and the file stays its own size. A commit that outgrows the mapping remaps it, and
// a remap waits for every open read transaction, then unmaps the old mapping with all its
// page-table entries: with bbolt's 1 GiB steps that stalled the commit, and every write
// behind it, once per GiB of growth, for longer the larger the file (95 ms at 2 GiB to
// 208 ms at 6 GiB on this project's VM; see the README's "Snapshots at scale"). Past
// 64 GiB (about 100 M messages) the remaps come back, once per GiB.
const initialMmapSize = 1 << (30 + 6*(^uint(0)>>63))

// FSM is the replicated state machine over one bbolt file.
type FSM struct {
	path string
	opts Options
	log  *slog.Logger

	// mu guards db: Restore and Close replace or clear it under the write lock, everything
	// else uses it under the read lock.
	mu sync.RWMutex
	db *bolt.DB
	// states counts the open States; while there is one, commits do not store the freelist
	// (see openLocked).
	states atomic.Int32

	// applied is the last index committed to the file; reads see exactly that state.
	applied atomic.Uint64
	idem    idemIndex
	regs    regCache
	// committed is broadcast after every commit, so WaitApplied wakes without polling;
	// batchApplied after every batch ApplyBatch applies, committed or not (BatchApplied).
	notifyMu     sync.Mutex
	committed    signal
	batchApplied signal

	commitState
}

// Open opens (or creates) the bbolt file at path.
func Open(path string, opts Options) (*FSM, error) {
	f := &FSM{path: path, opts: opts, log: opts.Logger}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	// A leftover from a Restore that crashed before its rename is garbage.
	_ = os.Remove(restoreTempPath(path))
	db, applied, err := f.openDB(path)
	if err != nil {
		return nil, err
	}
	f.db = db
	f.applied.Store(applied)
	f.startCommitter()
	return f, nil
}

// openDB opens the file at path, creates missing buckets, and loads the idempotency index.
func (f *FSM) openDB(path string) (*bolt.DB, uint64, error) {
	meta, found, err := ownBoltFile(path)
	if err != nil {
		return nil, 0, err
	}
	rebuild := found && meta.freelist == boltNoFreelist
	if rebuild {
		// bbolt is about to rebuild the freelist by reading every page (see prefetch.go).
		// Two lines, so that an operator sees why a start takes a minute.
		f.log.Info("fsm.db stores no freelist (a crash while it was large): reading the file through before bbolt rebuilds it")
		start := time.Now()
		n, err := readThrough(path)
		f.log.Info("fsm.db read through", "bytes", n, "took", time.Since(start).Round(time.Millisecond), "err", err)
	}
	opening := time.Now()
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		// The timeout turns "another process holds the file" into an error, not a hang.
		Timeout: 2 * time.Second,
		// Reserved up front, as etcd does, so that growth does not remap (see initialMmapSize).
		InitialMmapSize: initialMmapSize,
		// The freelist is written with every commit, except while a State is open or the
		// list is large (see openLocked), and by Close. It is mostly small (fsm.db is mostly
		// appended to: 68 free pages in a 5.8 GB file at 10 M messages), while rebuilding it
		// instead (NoFreelistSync) reads every page of the file at open: 3 min 20 s for that
		// file with a cold page cache, against 2 ms with the freelist stored. A file written
		// with NoFreelistSync is scanned once more, and its freelist stored by the first
		// commit. The map freelist allocates in O(1).
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("open fsm %s: %w", path, err)
	}
	if rebuild {
		f.log.Info("fsm.db opened after rebuilding its freelist", "took", time.Since(opening).Round(time.Millisecond),
			"freePages", db.Stats().FreePageN)
	}
	if err := db.View(checkBuckets); err != nil {
		_ = db.Close()
		return nil, 0, damaged(path, err)
	}
	// The saved index, if any, must be read before the update below commits.
	start := time.Now()
	saved := f.idem.loadCheckpoint(db, idemCheckpointPath(path))
	var applied uint64
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		applied = appliedIn(tx.Bucket(bktMeta))
		if err := convertOldMsgs(tx); err != nil {
			return err
		}
		return convertOldIdem(tx)
	})
	if err == nil && saved != nil {
		if !errors.Is(saved, fs.ErrNotExist) {
			f.log.Warn("saved idempotency index not used; scanning", "err", saved)
		}
		err = f.idem.load(db)
	}
	if err != nil {
		_ = db.Close()
		return nil, 0, fmt.Errorf("open fsm %s: %w", path, err)
	}
	f.log.Info("idempotency index loaded", "records", f.idem.len(), "saved", saved == nil, "took", time.Since(start).Round(time.Millisecond))
	return db, applied, nil
}

// checkBuckets reports a top-level key of tx that is not a bucket. Only a damaged file has
// one (a backup restore took it, as bbolt's Tx.Check does, and bbolt keeps no checksums);
// Tx.ForEach hands it to its function with a nil bucket, and Digest crashed on it.
func checkBuckets(tx *bolt.Tx) error {
	c := tx.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			return fmt.Errorf("corrupt: top-level key %q is not a bucket", k)
		}
	}
	return nil
}

// Close commits what is applied and closes the file.
func (f *FSM) Close() error {
	f.stopCommitter()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	// The commits may have skipped the freelist (see openLocked): one more stores it, so
	// that the next open reads it instead of scanning the file.
	if err := f.storeFreelist(); err != nil {
		f.log.Warn("freelist not stored; the next open rebuilds it by scanning fsm.db", "err", err)
	}
	if err := f.idem.save(f.db, idemCheckpointPath(f.path)); err != nil {
		f.log.Warn("idempotency index not saved; the next open scans it", "err", err)
	}
	err := f.db.Close()
	f.db = nil
	return err
}

// Apply applies one log entry (raft.FSM).
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// effects are what a batch did that the world outside the transaction must hear about, once
// the transaction has committed.
type effects struct {
	msgs    []Message
	deleted []string
	notices []Notice
}

// Notice is an event besides a message that connected clients must see: a revoke, a
// dismissed group, a kick, a read receipt. Appliers add them with txn.notify; after the
// batch commits they go to Options.OnNotices, which pushes them over WebSocket. A notice is
// not state: a client that was not connected learns the same through the read routes.
type Notice struct {
	// Type is the WebSocket frame's type ("revoke", "group_dismissed", ...).
	Type string
	// UIDs are the users whose connections receive it.
	UIDs []string
	// Fields are the frame's members beside "type" (JSON-encoded, keys in sorted order).
	Fields map[string]any
}

// ApplyBatch applies entries into the open write transaction (raft.BatchingFSM), opening
// one if there is none. Without Options.CommitDelay it commits before returning; with it,
// the committer goroutine commits later (see commit.go), and the entries' results are
// returned at once: they are durable in raft's log already, and a restart applies whatever
// the file had not committed again.
//
// Entries at or below the applied index are skipped (their result is nil): raft replays its
// log from the last snapshot after a restart, but this file already holds them. Each applied
// command returns a *Result; other entry types only advance the index.
//
// ApplyBatch panics on an entry it cannot decode, on an unknown command type without
// IgnoreUnknownFlag, and on a failed commit: the entry is committed in raft, so carrying on
// without it would make this replica silently diverge from the others, and a crashed
// replica is recoverable (restart, snapshot) while a diverged one is not. The panic rolls
// the open transaction back, so the file keeps its last commit.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	if len(logs) == 0 {
		return out
	}
	if g := f.apply(logs, out); g != nil {
		f.afterCommit(g)
	} else if f.opts.CommitDelay > 0 {
		f.kickCommitter()
	}
	f.notifyMu.Lock()
	f.batchApplied.broadcast()
	f.notifyMu.Unlock()
	return out
}

// BatchApplied returns a channel that is closed once ApplyBatch has applied its next batch
// (committed or not): raft has then dispatched every entry up to that batch's last, which
// lets a caller that waits for raft's applied index wake without polling.
func (f *FSM) BatchApplied() <-chan struct{} {
	f.notifyMu.Lock()
	defer f.notifyMu.Unlock()
	return f.batchApplied.wait()
}

// signal wakes every goroutine waiting on it at once: broadcast closes the channel that
// wait handed out. The channel is made only when someone waits, so a broadcast that nobody
// waits for (most batches and commits of a write load) allocates nothing. The caller
// guards it with a mutex (notifyMu).
type signal struct{ ch chan struct{} }

func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) broadcast() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// apply runs logs in the open transaction under txMu. It returns the group it committed
// when commits are synchronous.
func (f *FSM) apply(logs []*raft.Log, out []interface{}) *group {
	f.txMu.Lock()
	ok := false
	defer func() {
		if !ok {
			f.rollbackLocked()
		}
		f.txMu.Unlock()
	}()
	// A group at its size limit is committed before it takes more: the committer may be
	// lingering, and a bbolt transaction's dirty pages live in memory until it commits.
	for f.grp != nil && f.grp.entries >= maxGroupEntries {
		f.flushLocked()
	}
	if logs[len(logs)-1].Index <= f.lastAppliedLocked() {
		ok = true
		return nil
	}
	g := f.openLocked()
	w := g.w
	w.packed = 0
	applied := g.last
	last := applied
	for i, l := range logs {
		if l.Index <= applied {
			continue
		}
		if l.Type == raft.LogCommand {
			if r := w.applyCommand(l); r != nil {
				out[i] = r
			}
		}
		last = l.Index
	}
	w.saveLastID()
	if last > applied {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], last)
		if err := w.meta.Put(keyApplied, b[:]); err != nil {
			panic(fmt.Sprintf("fsm: record applied index %d: %v", last, err))
		}
		g.last = last
		// A packed entry counts as its commands: the bound is on the group's dirty pages.
		g.entries += len(logs) + w.packed
		w.packed = 0
	}
	ok = true
	if f.opts.CommitDelay > 0 {
		return nil
	}
	return f.commitLocked()
}

func (f *FSM) setApplied(index uint64) {
	f.applied.Store(index)
	if want := f.readWant.Load(); want != 0 && index >= want {
		f.readWant.CompareAndSwap(want, 0) // a read that raised it meanwhile keeps its own
	}
	f.notifyMu.Lock()
	f.committed.broadcast()
	f.notifyMu.Unlock()
}

// applyCommand decodes and applies one command entry: a *Result, BatchResults for a
// CmdBatch, or nil for a skipped unknown optional command.
func (w *txn) applyCommand(l *raft.Log) interface{} {
	w.index = l.Index
	w.now = 0
	if !l.AppendedAt.IsZero() {
		w.now = l.AppendedAt.UnixNano()
	}
	t, _, body, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("fsm: decode entry %d: %v", l.Index, err))
	}
	if t == CmdBatch {
		return w.applyBatch(body)
	}
	if r := w.applyOne(l.Data); r != nil {
		return r
	}
	return nil
}

// applyOne applies one command (a whole entry, or one command of a batch) at the entry's
// index and time set on w. It returns nil only for a skipped unknown optional command.
func (w *txn) applyOne(cmd []byte) *Result {
	t, key, body, err := Decode(cmd)
	if err != nil {
		panic(fmt.Sprintf("fsm: decode entry %d: %v", w.index, err))
	}
	base := t &^ IgnoreUnknownFlag
	if !knownCommand(base) {
		if t&IgnoreUnknownFlag != 0 {
			return nil
		}
		panic(fmt.Sprintf("fsm: entry %d has unknown command type %d", w.index, uint8(t)))
	}
	w.id = w.nextID()
	if key != nil {
		if r, ok, err := readIdem(w, key); err != nil {
			panic(fmt.Sprintf("fsm: entry %d: read idempotency record: %v", w.index, err))
		} else if ok {
			return r
		}
	}
	r, err := w.dispatch(base, body)
	if err != nil {
		if name := ErrorName(err); name != "" {
			r = &Result{Err: name}
		} else {
			// Not a business outcome: storage or a bug. The panic rolls the batch back.
			panic(fmt.Sprintf("fsm: apply %s at index %d: %v", base, w.index, err))
		}
	}
	if key != nil {
		if err := w.idemPut(key, r); err != nil {
			panic(fmt.Sprintf("fsm: entry %d: store idempotency record: %v", w.index, err))
		}
	}
	return r
}

func knownCommand(t CommandType) bool { return commandBody(t) != nil }

// commandBody returns a new, empty body of command type t, or nil for an unknown type.
func commandBody(t CommandType) interface{} {
	switch t {
	case CmdRegisterUser:
		return &RegisterUser{}
	case CmdUpdateUser:
		return &UpdateUser{}
	case CmdDeleteUsers:
		return &DeleteUsers{}
	case CmdImportFriends:
		return &ImportFriends{}
	case CmdAddBlacklist:
		return &AddBlacklist{}
	case CmdCreateGroup:
		return &CreateGroup{}
	case CmdInviteToGroup:
		return &InviteToGroup{}
	case CmdKickFromGroup:
		return &KickFromGroup{}
	case CmdSendMessage:
		return &SendMessage{}
	case CmdPruneIdempotency:
		return &PruneIdempotency{}
	case CmdDeleteFriend:
		return &DeleteFriend{}
	case CmdRemoveBlacklist:
		return &RemoveBlacklist{}
	case CmdSetGroupInfo:
		return &SetGroupInfo{}
	case CmdQuitGroup:
		return &QuitGroup{}
	case CmdTransferGroup:
		return &TransferGroup{}
	case CmdDismissGroup:
		return &DismissGroup{}
	case CmdSetGroupMemberInfo:
		return &SetGroupMemberInfo{}
	case CmdMuteGroupMember:
		return &MuteGroupMember{}
	case CmdCancelMuteGroupMember:
		return &CancelMuteGroupMember{}
	case CmdRevokeMessage:
		return &RevokeMessage{}
	case CmdDeleteMessages:
		return &DeleteMessages{}
	case CmdMarkAsRead:
		return &MarkAsRead{}
	case CmdSetConversation:
		return &SetConversation{}
	case CmdPruneMessages:
		return &PruneMessages{}
	}
	return nil
}

// Validate reports whether Apply can decode cmd. Apply treats an undecodable entry as a
// bug and stops the node (a diverging replica is worse than a crashed one), so a leader
// checks every command it receives from another node with Validate before proposing it.
func Validate(cmd []byte) error {
	t, key, body, err := Decode(cmd)
	if err != nil {
		return err
	}
	if t == CmdBatch {
		return validateBatch(key, body)
	}
	v := commandBody(t &^ IgnoreUnknownFlag)
	if v == nil {
		if t&IgnoreUnknownFlag != 0 {
			return nil
		}
		return fmt.Errorf("unknown command type %d", uint8(t))
	}
	if err := DecodeBody(body, v); err != nil {
		return fmt.Errorf("%s body: %w", t, err)
	}
	return nil
}

// dispatch decodes the body and calls the command's applier. An applier checks every
// precondition before its first write, so a domain error means nothing changed.
func (w *txn) dispatch(t CommandType, body []byte) (*Result, error) {
	v := commandBody(t)
	if v == nil {
		panic(fmt.Sprintf("fsm: no applier for %s", t))
	}
	if err := DecodeBody(body, v); err != nil {
		panic(fmt.Sprintf("fsm: decode %s body at index %d: %v", t, w.index, err))
	}
	switch c := v.(type) {
	case *RegisterUser:
		return w.registerUser(c)
	case *UpdateUser:
		return w.updateUser(c)
	case *DeleteUsers:
		return w.deleteUsers(c)
	case *ImportFriends:
		return w.importFriends(c)
	case *AddBlacklist:
		return w.addBlacklist(c)
	case *CreateGroup:
		return w.createGroup(c)
	case *InviteToGroup:
		return w.inviteToGroup(c)
	case *KickFromGroup:
		return w.kickFromGroup(c)
	case *SendMessage:
		return w.sendMessage(c)
	case *PruneIdempotency:
		return w.pruneIdempotency(c)
	case *DeleteFriend:
		return w.deleteFriend(c)
	case *RemoveBlacklist:
		return w.removeBlacklist(c)
	case *SetGroupInfo:
		return w.setGroupInfo(c)
	case *QuitGroup:
		return w.quitGroup(c)
	case *TransferGroup:
		return w.transferGroup(c)
	case *DismissGroup:
		return w.dismissGroup(c)
	case *SetGroupMemberInfo:
		return w.setGroupMemberInfo(c)
	case *MuteGroupMember:
		return w.muteGroupMember(c)
	case *CancelMuteGroupMember:
		return w.cancelMuteGroupMember(c)
	case *RevokeMessage:
		return w.revokeMessage(c)
	case *DeleteMessages:
		return w.deleteMessages(c)
	case *MarkAsRead:
		return w.markAsRead(c)
	case *SetConversation:
		return w.setConversation(c)
	case *PruneMessages:
		return w.pruneMessages(c)
	}
	panic(fmt.Sprintf("fsm: no applier for %s", t))
}

// FreePages returns how many pages of fsm.db are free (or freed by commits that readers
// may still see) and the size of bbolt's freelist as a commit writes it, as of the last
// commit. Deletes free pages that later writes reuse; while the list is over
// storedFreelistLimit the commits do not store it (see openLocked).
func (f *FSM) FreePages() (pages, listBytes int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return 0, 0
	}
	s := f.db.Stats()
	return s.FreePageN + s.PendingPageN, s.FreelistInuse
}

// AppliedIndex is the last raft index applied and committed to the file: reads see the
// state as of this index. With group commit, ApplyBatch may have returned for later ones.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// WaitApplied blocks until AppliedIndex() >= index or ctx ends: then a read sees every
// entry up to index.
//
// The FSM only sees command and configuration entries: raft keeps its no-op and barrier
// entries to itself, so index must be one the FSM receives (or use raft's own applied index
// for a commit index that may be a no-op's).
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	asked := false
	for {
		// Take the channel before reading the index: a batch that lands in between closes
		// this very channel, so the wake-up cannot be lost.
		f.notifyMu.Lock()
		ch := f.committed.wait()
		f.notifyMu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		if !asked {
			f.wantRead(index)
			asked = true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// view runs fn in a read transaction of the current file.
func (f *FSM) view(fn func(r *txn) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return ErrClosed
	}
	return f.db.View(func(tx *bolt.Tx) error { return fn(newTxn(tx, &f.idem)) })
}
