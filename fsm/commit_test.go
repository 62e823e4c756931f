package fsm

import (
	"context"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// groupHarness is a harness whose FSM commits in groups, with an interval long enough that
// a test decides when a group is committed (Flush, Snapshot, Close, the size limit).
func groupHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.CommitDelay == 0 {
		opts.CommitDelay = time.Hour
	}
	path := filepath.Join(t.TempDir(), "fsm.db")
	return &harness{t: t, f: mustOpen(t, path, opts), path: path, now: t0}
}

// holdCommits makes the committer wait its whole CommitDelay before the next commit, as
// after an expensive one.
func (h *harness) holdCommits() {
	h.f.txMu.Lock()
	defer h.f.txMu.Unlock()
	h.f.lastCommit, h.f.lastCommitTook = time.Now(), h.f.opts.CommitDelay
}

// heldPairHarness is a group harness whose users a and b are committed, with the committer
// holding the next group for its whole CommitDelay.
func heldPairHarness(t *testing.T) *harness {
	t.Helper()
	h := groupHarness(t, Options{})
	h.register("a", "b")
	h.f.Flush()
	h.holdCommits()
	return h
}

// crash drops the open group as a process crash would: nothing of it reaches the file.
func (h *harness) crash() {
	h.t.Helper()
	h.f.txMu.Lock()
	h.f.rollbackLocked()
	h.f.txMu.Unlock()
	if err := h.f.Close(); err != nil {
		h.t.Fatalf("close: %v", err)
	}
}

func (h *harness) pull(conv string) []Message {
	h.t.Helper()
	msgs, err := h.f.PullMessages(conv, 1, 1000, 1000)
	if err != nil {
		h.t.Fatalf("pull %s: %v", conv, err)
	}
	return msgs
}

func TestGroupCommitReadsSeeOnlyCommittedEntries(t *testing.T) {
	var (
		mu        sync.Mutex
		delivered []uint64
	)
	h := groupHarness(t, Options{OnCommit: func(msgs []Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			delivered = append(delivered, m.Seq)
		}
	}})
	h.register("a", "b")
	h.f.Flush()
	h.holdCommits()
	committed := h.f.AppliedIndex()
	conv := SingleConversationID("a", "b")
	for i := 0; i < 3; i++ {
		if r := h.send("a", "b", SessionSingle, "hi"); r.Err != "" || r.Seq != uint64(i+1) {
			t.Fatalf("send %d: %+v", i, r)
		}
	}
	// Applied (the results above are final) but lingering in the open transaction.
	if got := h.f.AppliedIndex(); got != committed {
		t.Fatalf("applied index before the commit: got %d, want %d", got, committed)
	}
	if got := h.pull(conv); len(got) != 0 {
		t.Fatalf("a read saw %d uncommitted messages", len(got))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.f.WaitApplied(ctx, h.index); err == nil {
		t.Fatalf("WaitApplied returned before the commit")
	}
	h.f.Flush()
	if got := h.f.AppliedIndex(); got != h.index {
		t.Fatalf("applied index after Flush: got %d, want %d", got, h.index)
	}
	if got := h.pull(conv); len(got) != 3 {
		t.Fatalf("after the commit: got %d messages, want 3", len(got))
	}
	// The committer calls OnCommit after the commit, outside the lock Flush waits on.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		got := append([]uint64(nil), delivered...)
		mu.Unlock()
		if len(got) >= 3 || time.Now().After(deadline) {
			if !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
				t.Fatalf("OnCommit saw seqs %v, want [1 2 3]", got)
			}
			break
		}
	}
}

// A group is committed at most CommitDelay after the previous commit, and at once after a
// quiet period: a lone write is not held back.
func TestGroupCommitInterval(t *testing.T) {
	h := groupHarness(t, Options{CommitDelay: 20 * time.Millisecond})
	h.register("a")
	if err := h.f.WaitApplied(ctxTimeout(t), h.index); err != nil {
		t.Fatalf("the group after a quiet period was not committed: %v", err)
	}
	start := time.Now()
	h.register("b")
	if err := h.f.WaitApplied(ctxTimeout(t), h.index); err != nil {
		t.Fatalf("the next group was not committed: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the next group took %v", d)
	}
}

// A read that waits for applied entries has their group committed once the committer has
// rested twice as long as its last commit took, not four times: here 2 s against 4 s.
func TestGroupCommitSoonerForAWaitingRead(t *testing.T) {
	h := groupHarness(t, Options{})
	h.register("a", "b")
	h.f.Flush()
	lastCommitTook := func(d time.Duration) {
		h.f.txMu.Lock()
		defer h.f.txMu.Unlock()
		h.f.lastCommit, h.f.lastCommitTook = time.Now(), d
	}
	waitRead := func(index uint64) time.Duration {
		t.Helper()
		start := time.Now()
		if err := h.f.WaitApplied(ctxTimeout(t), index); err != nil {
			t.Fatalf("WaitApplied(%d): %v", index, err)
		}
		return time.Since(start)
	}

	// The entry is applied before the read comes.
	lastCommitTook(time.Second)
	h.send("a", "b", SessionSingle, "hi")
	if d := waitRead(h.index); d > 3500*time.Millisecond {
		t.Fatalf("a read waited %v for an applied entry, the committer's rest without reads being 4 s", d)
	}
	if want := h.f.readWant.Load(); want != 0 {
		t.Fatalf("after the commit a read still waits for %d", want)
	}

	// The read comes first and waits for the next entry; Apply wakes the committer.
	lastCommitTook(time.Second)
	next := h.index + 1
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		err := h.f.WaitApplied(ctxTimeout(t), next)
		if err != nil {
			t.Errorf("WaitApplied(%d): %v", next, err)
		}
		done <- time.Since(start)
	}()
	for h.f.readWant.Load() < next {
		time.Sleep(time.Millisecond)
	}
	h.send("a", "b", SessionSingle, "hi again")
	if h.index != next {
		t.Fatalf("the send was applied at %d, the read waits for %d", h.index, next)
	}
	if d := <-done; d > 3500*time.Millisecond {
		t.Fatalf("a read waited %v for an entry applied after it came", d)
	}
}

// A restore that moves the applied index past a waiting read's index answers the read and
// clears readWant, so that the next group is not hurried for a read already answered.
func TestRestorePastAWaitingReadClearsIt(t *testing.T) {
	src := newHarness(t)
	src.register("a", "b", "c")
	data := mustState(t, src.f)

	h := groupHarness(t, Options{})
	h.register("x")
	done := make(chan error, 1)
	go func() { done <- h.f.WaitApplied(ctxTimeout(t), src.index) }()
	for h.f.readWant.Load() < src.index {
		time.Sleep(time.Millisecond)
	}
	mustRestore(t, h.f, data)
	if err := <-done; err != nil {
		t.Fatalf("the read waiting for %d: %v", src.index, err)
	}
	if want := h.f.readWant.Load(); want != 0 {
		t.Fatalf("after the restore to %d a read still waits for %d", h.f.AppliedIndex(), want)
	}
}

// A group that nobody waits for rests the whole CommitDelay (here an hour). One whose
// messages a connected user receives (Options.Awaits), or that deleted a user, rests four
// times as long as the last commit took (here 4 × 100 ms). Awaits sees each message once.
func TestGroupCommitAtLeisureUnlessAwaited(t *testing.T) {
	// Awaits stands in for the gateway with c connected: a message is awaited if c
	// receives it.
	var shown atomic.Int64
	h := groupHarness(t, Options{Awaits: func(msgs []Message, notices []Notice) bool {
		shown.Add(int64(len(msgs) + len(notices)))
		for _, m := range msgs {
			if m.RecvID == "c" || m.SendID == "c" {
				return true
			}
		}
		return false
	}})
	h.register("a", "b", "c")
	h.f.Flush()
	lastCommitTook := func(d time.Duration) {
		h.f.txMu.Lock()
		defer h.f.txMu.Unlock()
		h.f.lastCommit, h.f.lastCommitTook = time.Now(), d
	}
	committedWithin := func(d time.Duration) bool {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		for ctx.Err() == nil && h.f.AppliedIndex() < h.index {
			time.Sleep(5 * time.Millisecond)
		}
		return h.f.AppliedIndex() >= h.index
	}

	lastCommitTook(100 * time.Millisecond)
	h.send("a", "b", SessionSingle, "nobody connected receives it")
	if committedWithin(time.Second) {
		t.Fatal("a message nobody waits for was committed within a second, not at leisure")
	}
	h.send("a", "c", SessionSingle, "c receives it") // Apply wakes the committer
	if !committedWithin(3 * time.Second) {
		t.Fatal("a message a connected user waits for was not committed within 3 s (400 ms expected)")
	}
	if n := shown.Load(); n != 2 {
		t.Fatalf("Awaits was shown %d messages, want each of the 2 once", n)
	}

	lastCommitTook(100 * time.Millisecond)
	h.mustApply(CmdDeleteUsers, &DeleteUsers{UIDs: []string{"b"}})
	if !committedWithin(3 * time.Second) {
		t.Fatal("a user's deletion was not committed within 3 s (400 ms expected)")
	}
}

// A signal wakes everyone who waited before a broadcast, and only them; a broadcast that
// nobody waits for makes no channel.
func TestSignal(t *testing.T) {
	var s signal
	s.broadcast()
	if s.ch != nil {
		t.Fatal("a broadcast with no waiter made a channel")
	}
	a, b := s.wait(), s.wait()
	if a != b {
		t.Fatal("two waiters before one broadcast got different channels")
	}
	s.broadcast()
	select {
	case <-a:
	default:
		t.Fatal("the broadcast did not close the waiters' channel")
	}
	select {
	case <-s.wait():
		t.Fatal("a waiter after the broadcast was woken by it")
	default:
	}
}

// BatchApplied wakes its waiters once a batch is applied, before the batch is committed.
func TestBatchAppliedClosesOnApplyNotCommit(t *testing.T) {
	h := heldPairHarness(t)
	ch := h.f.BatchApplied()
	select {
	case <-ch:
		t.Fatalf("closed before any batch")
	default:
	}
	committed := h.f.AppliedIndex()
	h.send("a", "b", SessionSingle, "hi")
	select {
	case <-ch:
	default:
		t.Fatalf("not closed after a batch was applied")
	}
	if got := h.f.AppliedIndex(); got != committed {
		t.Fatalf("the batch was committed (applied index %d, was %d): the test shows nothing", got, committed)
	}
	select {
	case <-h.f.BatchApplied():
		t.Fatalf("the next batch's channel is closed already")
	default:
	}
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGroupCommitCrashReplaysFromTheLog(t *testing.T) {
	h := heldPairHarness(t)
	committed := h.f.AppliedIndex()
	var replay []*raft.Log
	var first []*Result
	for i := 0; i < 5; i++ {
		l := h.next(CmdSendMessage, idemKey("op"+string(rune('0'+i))), &SendMessage{
			MsgID: "m" + string(rune('0'+i)), SendID: "a", RecvID: "b",
			SessionType: SessionSingle, ContentType: 101, Content: []byte(`{"text":"x"}`),
		})
		replay = append(replay, l)
		first = append(first, asResult(t, h.f.ApplyBatch([]*raft.Log{l})[0]))
	}
	h.crash()

	// Restarted, the file holds the last commit; raft applies the rest from its log again.
	h.f = mustOpen(t, h.path, Options{CommitDelay: time.Hour})
	if got := h.f.AppliedIndex(); got != committed {
		t.Fatalf("applied index after the crash: got %d, want %d", got, committed)
	}
	out := h.f.ApplyBatch(replay)
	for i := range out {
		r := asResult(t, out[i])
		if r.Seq != first[i].Seq || r.MsgID != first[i].MsgID || r.Replayed {
			t.Fatalf("replayed entry %d: got %+v, want %+v", i, r, first[i])
		}
	}
	// A second replay (raft resending what the file already has) changes nothing.
	if err := h.f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	h.f = mustOpen(t, h.path, Options{CommitDelay: time.Hour})
	if got := h.f.AppliedIndex(); got != h.index {
		t.Fatalf("Close did not commit the open group: applied %d, want %d", got, h.index)
	}
	for _, r := range h.f.ApplyBatch(replay) {
		if r != nil {
			t.Fatalf("an entry at or below the applied index was applied again: %+v", r)
		}
	}
	if got := h.pull(SingleConversationID("a", "b")); len(got) != 5 {
		t.Fatalf("got %d messages, want 5", len(got))
	}
}

func TestGroupCommitSnapshotHoldsTheOpenGroup(t *testing.T) {
	h := heldPairHarness(t)
	h.send("a", "b", SessionSingle, "one")
	h.send("a", "b", SessionSingle, "two")
	if h.f.AppliedIndex() == h.index {
		t.Fatalf("the sends were committed before the snapshot: nothing to test")
	}
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	if got := h.f.AppliedIndex(); got != h.index {
		t.Fatalf("Snapshot left entries uncommitted: applied %d, want %d", got, h.index)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if ref, ok := ParseSnapshotRef(sink.Bytes()); !ok || ref != h.index {
		t.Fatalf("snapshot refers to %d (%v), want %d", ref, ok, h.index)
	}
	g := newHarness(t)
	mustRestore(t, g.f, mustState(t, h.f))
	if got := g.pull(SingleConversationID("a", "b")); len(got) != 2 {
		t.Fatalf("restored state has %d messages, want 2", len(got))
	}
}

func TestGroupCommitSizeLimitCommits(t *testing.T) {
	h := groupHarness(t, Options{})
	h.register("a")
	h.f.Flush()
	h.holdCommits()
	name := "n"
	var batch []*raft.Log
	for i := 0; i < maxGroupEntries; i++ {
		batch = append(batch, h.next(CmdUpdateUser, nil, &UpdateUser{UID: "a", Name: &name}))
	}
	h.f.ApplyBatch(batch)
	// The committer commits a full group without waiting for the interval.
	if err := h.f.WaitApplied(ctxTimeout(t), h.index); err != nil {
		t.Fatalf("a full group was not committed: %v", err)
	}
}
