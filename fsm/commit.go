package fsm

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit.
//
// Raft hands the FSM one batch per advance of its commit index: at 64 concurrent writers on
// three nodes that is about 15 entries, and a bbolt commit costs the same pwrites of every
// touched page and two fdatasyncs whether it carries 15 entries or 1,500. Committing each
// batch made those commits the largest cost of a node (CPU profiles in the README).
//
// So the apply goroutine applies batch after batch into one open write transaction, and the
// committer goroutine commits it. How long it rests after a commit depends on who waits
// for the next (see lingerLocked):
//   - nobody: CommitDelay. Writes are answered once applied, not committed, so only the
//     commit's readers notice when it comes;
//   - the gateway, for the group's messages or notices to a user connected to this node,
//     or for the users it deleted (their cached tokens are cleared at the commit): four
//     times as long as the last commit took, at most CommitDelay. Cheap commits on a quiet
//     node follow each other closely, and expensive ones under load are spaced out so
//     that each carries more, with the committer busy at most a fifth of the time;
//   - a read, for entries of the open group: twice as long as the last commit took.
//
// The rest counts from the end of the last commit, so a write after a quiet spell is
// committed at once. A group of maxGroupEntries is committed at once. The busier the node,
// the larger the groups; a commit's cost grows with the distinct pages it writes, far
// slower than with its entries (BenchmarkApplySingleChats: 4.8 pages per message in groups
// of 16, 1.8 in groups of 1,024).
//
// This is safe because an entry reaches the FSM only once it is durable in a quorum's raft
// logs, this node's own included. ApplyBatch may return (and raft answer the client) before
// the commit: a crash before the commit loses nothing, since the applied index is written in
// the same transaction and a restart applies the missing entries again from the log (raft
// keeps every entry above the last snapshot, and Snapshot commits first). Reads and
// WaitApplied see only committed state, so a linearizable read still sees every write
// acknowledged before it began: the node waits until AppliedIndex reaches its read index.
// etcd runs bbolt under its raft log the same way, with a longer interval.

// maxGroupEntries bounds a group: its dirty pages are memory until the commit, and one
// commit should not stall the apply goroutine for long.
const maxGroupEntries = 4096

// storedFreelistLimit is the largest freelist (bytes as bbolt writes it, 8 per free page)
// that every commit stores: 64 KiB, 8,192 free pages. Steady writing keeps the list far
// below it (68 pages in a 5.8 GB file at 10 M messages; pruning a day's idempotency
// records every 10 s frees about 1,000 pages a time at 3,000 writes/s). A larger list is
// stored by a clean stop (FSM.Close); after a crash the next open reads the file through
// and rebuilds it (see prefetch.go). A variable so that tests can lower it.
var storedFreelistLimit = 64 << 10

// group is the open write transaction: the batches applied since the last commit.
type group struct {
	w       *txn
	last    uint64 // index of the last entry applied in it
	entries int
	eff     effects
	// awaited: Options.Awaits said yes to some of eff's messages or notices; asked and
	// askedNotices count those it was shown, so each is shown once.
	awaited             bool
	asked, askedNotices int
}

// commitState is the FSM's group-commit machinery. Lock order: txMu before FSM.mu.
type commitState struct {
	// txMu guards grp and flushReq; cond is broadcast after every commit or rollback.
	txMu     sync.Mutex
	cond     *sync.Cond
	grp      *group
	flushReq bool
	// lastCommit is when the last commit ended and lastCommitTook how long it took
	// (committer only).
	lastCommit     time.Time
	lastCommitTook time.Duration

	// readWant is the highest index a read waits for (WaitApplied) that the applied index
	// has not reached yet; 0: none. A group that holds it is committed sooner (see
	// lingerLocked). setApplied clears it, after a commit or a restore.
	readWant atomic.Uint64

	kick     chan struct{} // wakes the committer; buffered, one pending wake-up is enough
	stop     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once

	observe atomic.Pointer[func(entries int, d time.Duration)]
}

// SetCommitObserver is called after every commit with the entries committed and the time
// the commit took (for metrics). It must not block.
func (f *FSM) SetCommitObserver(fn func(entries int, d time.Duration)) { f.observe.Store(&fn) }

func (f *FSM) startCommitter() {
	f.cond = sync.NewCond(&f.txMu)
	f.stop = make(chan struct{})
	f.stopped = make(chan struct{})
	if f.opts.CommitDelay <= 0 {
		close(f.stopped)
		return
	}
	f.kick = make(chan struct{}, 1)
	go f.commitLoop()
}

// stopCommitter commits the open group and stops the committer.
func (f *FSM) stopCommitter() {
	f.stopOnce.Do(func() {
		f.Flush()
		close(f.stop)
		<-f.stopped
	})
}

func (f *FSM) kickCommitter() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Flush commits the open group, if any, and returns once it is committed.
func (f *FSM) Flush() {
	f.txMu.Lock()
	defer f.txMu.Unlock()
	f.flushLocked()
}

// flushLocked has the committer commit the open group (so OnCommit callbacks keep their
// order) and waits for it; without a committer there is never an open group here.
func (f *FSM) flushLocked() {
	for f.grp != nil {
		f.flushReq = true
		f.kickCommitter()
		f.cond.Wait()
	}
}

func (f *FSM) lastAppliedLocked() uint64 {
	if f.grp != nil {
		return f.grp.last
	}
	return f.applied.Load()
}

// openLocked returns the open group, beginning a write transaction if there is none.
func (f *FSM) openLocked() *group {
	if f.grp != nil {
		return f.grp
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		panic("fsm: apply on a closed FSM")
	}
	tx, err := f.db.Begin(true)
	if err != nil {
		panic(fmt.Sprintf("fsm: begin transaction: %v", err))
	}
	// While a State is open its read transaction keeps every page a commit frees pending,
	// and bbolt writes the pending pages into the freelist that each commit stores, in new
	// pages that become pending in turn: the list, the file and the time of a commit grow
	// with every commit for as long as the view stays open (bbolt alone, 400 MB file, one
	// read transaction held: 500 commits took 10 s, the next 500 39 s, the next 95 s, worst
	// commit 377 ms, file 8.7 GB; without it, ~5 s per 500, worst 24 ms, file 741 MB). So
	// while one is open the commits skip the freelist, as NoFreelistSync does, and the first
	// after it stores the list again. A crash meanwhile costs the next open a scan of the
	// file to rebuild it (see openDB). The field is only read by Commit, under the writer
	// lock this transaction holds.
	//
	// They skip it too while it is large (storedFreelistLimit): after the leader prunes a
	// backlog of idempotency records or messages, the list holds every page the deletes
	// freed until new writes reuse them, and each commit would write all of it.
	f.db.NoFreelistSync = f.states.Load() > 0 || f.db.Stats().FreelistInuse > storedFreelistLimit
	g := &group{w: newTxn(tx, &f.idem)}
	g.w.eff = &g.eff
	g.last = g.w.appliedIndex()
	f.grp = g
	return g
}

// storeFreelist commits nothing but bbolt's freelist if the last commit skipped it (see
// openLocked). No group may be open: with txMu held after flushLocked, or once the
// committer has stopped. The caller holds f.mu or owns the FSM.
func (f *FSM) storeFreelist() error {
	if f.db == nil {
		return ErrClosed
	}
	if !f.db.NoFreelistSync {
		return nil // the last commit stored it (and so does bbolt's open)
	}
	f.db.NoFreelistSync = false
	return f.db.Update(func(*bolt.Tx) error { return nil })
}

// commitLocked commits the open group and returns it (nil if there was none).
func (f *FSM) commitLocked() *group {
	g := f.grp
	if g == nil {
		return nil
	}
	f.grp = nil
	f.flushReq = false
	defer f.cond.Broadcast()
	if g.entries == 0 {
		_ = g.w.tx.Rollback() // nothing applied: no commit, no fsync
		return nil
	}
	start := time.Now()
	if err := g.w.tx.Commit(); err != nil {
		panic(fmt.Sprintf("fsm: commit entries up to index %d: %v", g.last, err))
	}
	if len(g.eff.deleted) > 0 {
		// Before the index moves and Flush returns, so that no read after them finds a
		// deleted user's cached RegIndex (afterCommit runs later, outside txMu).
		f.regs.clear()
	}
	if fn := f.observe.Load(); fn != nil {
		(*fn)(g.entries, time.Since(start))
	}
	f.setApplied(g.last)
	return g
}

// rollbackLocked drops the open group after a panic in Apply; the process is expected to
// stop, and its restart applies the dropped entries from the log again.
func (f *FSM) rollbackLocked() {
	if f.grp == nil {
		return
	}
	_ = f.grp.w.tx.Rollback()
	f.grp = nil
	f.flushReq = false
	f.cond.Broadcast()
}

// afterCommit tells the world outside the file what a committed group did, in log order:
// only one goroutine commits (the committer, or the apply goroutine without group commit).
func (f *FSM) afterCommit(g *group) {
	if f.opts.OnCommit != nil && len(g.eff.msgs) > 0 {
		f.opts.OnCommit(g.eff.msgs)
	}
	if f.opts.OnUsersDeleted != nil && len(g.eff.deleted) > 0 {
		f.opts.OnUsersDeleted(g.eff.deleted)
	}
	if f.opts.OnNotices != nil && len(g.eff.notices) > 0 {
		f.opts.OnNotices(g.eff.notices)
	}
}

// commitLoop is the committer goroutine.
func (f *FSM) commitLoop() {
	defer close(f.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-f.kick:
		}
		for {
			f.txMu.Lock()
			g := f.grp
			if g == nil {
				f.txMu.Unlock()
				break
			}
			if wait := f.lingerLocked(g); wait > 0 {
				f.txMu.Unlock()
				timer.Reset(wait)
				select {
				case <-f.kick:
				case <-timer.C:
				case <-f.stop: // only after a Flush, or a rollback in a test
					return
				}
				timer.Stop()
				continue
			}
			start := time.Now()
			done := f.commitLocked()
			f.lastCommit = time.Now()
			f.lastCommitTook = f.lastCommit.Sub(start)
			f.txMu.Unlock()
			if done != nil {
				f.afterCommit(done)
			}
			break
		}
	}
}

// lingerLocked is how long the committer should leave g open: zero to commit now.
//
// A commit holds txMu and so holds up Apply: on a node that commits often, a write that
// comes during a commit waits for its fsyncs. Resting the whole CommitDelay when nobody
// waits made sends alone 14-15% faster at c = 1 and c = 64 (README, "Commits at
// leisure"). A group that a read waits for (readWant) waits only twice as long as the last
// commit took, not four times: the committer is then busy at most a third of the time.
// Resting only once as long (half the time busy) made reads faster still but sends slower
// (README, "Reads commit sooner").
func (f *FSM) lingerLocked(g *group) time.Duration {
	if f.flushReq || g.entries >= maxGroupEntries {
		return 0
	}
	gap := f.opts.CommitDelay
	if f.awaitedLocked(g) {
		gap = min(gap, 4*f.lastCommitTook)
	}
	if want := f.readWant.Load(); want != 0 && g.last >= want {
		gap = min(gap, 2*f.lastCommitTook)
	}
	return gap - time.Since(f.lastCommit)
}

// awaitedLocked reports whether the world outside waits for g's commit, reads apart: for
// the users it deleted, or for the messages and notices that Options.Awaits says someone
// waits for. Each is asked about once, when the committer first considers it: a user who
// connects later registers before reading its starting point, so it gets the rest with
// the commit, at the latest CommitDelay after the last.
func (f *FSM) awaitedLocked(g *group) bool {
	if len(g.eff.deleted) > 0 || g.awaited {
		return true
	}
	msgs, notices := g.eff.msgs[g.asked:], g.eff.notices[g.askedNotices:]
	if len(msgs) == 0 && len(notices) == 0 {
		return false
	}
	g.asked, g.askedNotices = len(g.eff.msgs), len(g.eff.notices)
	g.awaited = f.opts.Awaits == nil || f.opts.Awaits(msgs, notices)
	return g.awaited
}

// wantRead records that a read waits for index to be committed, and wakes the committer
// to reconsider its wait (Apply wakes it too, after every batch).
func (f *FSM) wantRead(index uint64) {
	for {
		want := f.readWant.Load()
		if want >= index {
			break
		}
		if f.readWant.CompareAndSwap(want, index) {
			break
		}
	}
	f.kickCommitter()
}
