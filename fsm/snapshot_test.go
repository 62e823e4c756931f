package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// memSink is a raft.SnapshotSink over a buffer.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// mustSnapshot persists a raft snapshot of f (a reference) and returns its bytes.
func mustSnapshot(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink: got closed=%v cancelled=%v, want closed", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// mustState returns the state file as a leader streams it to a follower (OpenState).
func mustState(t testing.TB, f *FSM) []byte {
	t.Helper()
	st, err := f.OpenState()
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	defer st.Close()
	var b bytes.Buffer
	n, err := st.WriteTo(&b)
	if err != nil {
		t.Fatalf("write state: %v", err)
	}
	if n != st.Size() || int64(b.Len()) != st.Size() {
		t.Fatalf("state: wrote %d bytes (buffer %d), Size says %d", n, b.Len(), st.Size())
	}
	return b.Bytes()
}

func mustRestore(t *testing.T, f *FSM, data []byte) {
	t.Helper()
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("restore: %v", err)
	}
}

// populate builds a state that touches every bucket.
func populate(h *harness) {
	h.register("alice", "bob", "carol", "dave")
	h.mustApply(CmdImportFriends, &ImportFriends{OwnerUID: "alice", FriendUIDs: []string{"bob", "carol"}})
	h.mustApply(CmdAddBlacklist, &AddBlacklist{OwnerUID: "carol", UID: "dave"})
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "g1", Name: "team", Members: []MemberSpec{
		{UID: "alice", Role: RoleOwner}, {UID: "bob", Role: RoleAdmin}, {UID: "carol"}}})
	h.send("alice", "bob", SessionSingle, "hi")
	h.send("bob", "alice", SessionSingle, "hello")
	h.send("carol", "g1", SessionGroup, "all")
	h.applyKey(CmdSendMessage, idemKey("op1"), &SendMessage{MsgID: "k1", SendID: "dave", RecvID: "alice", SessionType: SessionSingle})
}

// reads gathers what the read API answers, to compare two FSMs.
func reads(t *testing.T, f *FSM) map[string]interface{} {
	t.Helper()
	out := map[string]interface{}{}
	must := func(name string, v interface{}, err error) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = v
	}
	uids, err := f.AllUIDs()
	must("uids", uids, err)
	users, err := f.Users(uids)
	must("users", users, err)
	for _, uid := range uids {
		v1, err := f.Friends(uid)
		must("friends "+uid, v1, err)
		v2, err := f.Blacklist(uid)
		must("blacklist "+uid, v2, err)
		v3, err := f.JoinedGroups(uid)
		must("groups "+uid, v3, err)
		seqs, err := f.NewestSeqs(uid)
		must("seqs "+uid, seqs, err)
		for _, s := range seqs {
			msgs, err := f.PullMessages(s.ConversationID, 1, s.MaxSeq, 0)
			must("msgs "+s.ConversationID, msgs, err)
		}
	}
	members, err := f.GroupMembers("g1")
	must("members g1", members, err)
	idem, _, err := f.IdempotentResult(idemKey("op1"))
	must("idem op1", idem, err)
	return out
}

func TestStateRestoresIntoFreshFSM(t *testing.T) {
	h := newHarness(t)
	populate(h)
	data := mustState(t, h.f)

	fresh := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	mustRestore(t, fresh, data)
	if got, want := fresh.AppliedIndex(), h.f.AppliedIndex(); got != want {
		t.Fatalf("applied index: got %d, want %d", got, want)
	}
	if got, want := mustDigest(t, fresh), h.digest(); got != want {
		t.Fatalf("digest: got %s, want %s", got, want)
	}
	if got, want := reads(t, fresh), reads(t, h.f); !reflect.DeepEqual(got, want) {
		t.Fatalf("reads differ:\ngot  %v\nwant %v", got, want)
	}

	// Both go on identically from the snapshot.
	next := h.next(CmdSendMessage, nil, &SendMessage{MsgID: "after", SendID: "alice", RecvID: "bob", SessionType: SessionSingle})
	r1, r2 := asResult(t, h.f.Apply(next)), asResult(t, fresh.Apply(next))
	if !reflect.DeepEqual(r1, r2) {
		t.Fatalf("after restore: got %+v, want %+v", r2, r1)
	}
	if mustDigest(t, fresh) != h.digest() {
		t.Fatalf("digests diverged after the next entry")
	}
}

func mustDigest(t *testing.T, f *FSM) string {
	t.Helper()
	d, err := f.Digest()
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return d
}

func TestRestoreReplacesState(t *testing.T) {
	src := newHarness(t)
	src.register("only")
	data := mustState(t, src.f)

	h := newHarness(t)
	populate(h)
	mustRestore(t, h.f, data)
	uids, err := h.f.AllUIDs()
	if err != nil {
		t.Fatalf("uids: %v", err)
	}
	if !reflect.DeepEqual(uids, []string{"only"}) {
		t.Fatalf("got uids %v, want [only]", uids)
	}
	if got := h.f.AppliedIndex(); got != 1 {
		t.Fatalf("applied index: got %d, want 1", got)
	}
	if err := h.f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// The restored file is the database now, also after a restart.
	f := mustOpen(t, h.path, Options{})
	if got := mustDigest(t, f); got != src.digest() {
		t.Fatalf("digest after reopen: got %s, want %s", got, src.digest())
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	h := newHarness(t)
	h.register("a")
	before := h.digest()
	if err := h.f.Restore(io.NopCloser(bytes.NewReader([]byte("not a database")))); err == nil {
		t.Fatalf("restore of garbage: got no error, want one")
	}
	// A bbolt file that is not a state (no meta bucket) is refused too.
	other := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(data))); err == nil {
		t.Fatalf("restore of a bbolt file without the meta bucket: got no error, want one")
	}
	// A state cut short, or with its root page zeroed, is refused before bbolt maps it
	// (a cut file made bbolt fault outside the mapping: SIGSEGV, which no recover catches).
	src := newHarness(t)
	populate(src)
	state := mustState(t, src.f)
	for name, bad := range corruptStates(t, state) {
		if err := h.f.Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
			t.Fatalf("restore of a state %s: got no error, want one", name)
		}
	}
	if h.digest() != before {
		t.Fatalf("a failed restore changed the state")
	}
}

// corruptStates returns copies of the state file b that are not whole: cut to a half and a
// tenth, with the root or the freelist page of its newest meta zeroed, and with counts and
// positions in those pages that point past their ends (bbolt, which reads through its
// mapping, faulted on three of those four), and with a top-level key that is no bucket.
func corruptStates(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f := mustOpenFile(t, path)
	m, pageSize, ok := newestBoltMeta(f)
	need := int(m.hwm) * int(pageSize) // a file on disk may be larger: bbolt grows it ahead
	if !ok || len(b) < need || m.hwm < 4 {
		t.Fatalf("state file: meta %+v, page size %d, %d bytes: want a valid meta whose 4 or more pages the file holds", m, pageSize, len(b))
	}
	if m.freelist == boltNoFreelist {
		t.Fatalf("state file stores no freelist")
	}
	change := func(id uint64, fn func(page []byte)) []byte {
		c := bytes.Clone(b)
		fn(c[int(id)*int(pageSize) : int(id+1)*int(pageSize)])
		return c
	}
	root := b[int(m.root)*int(pageSize) : int(m.root+1)*int(pageSize)]
	if binary.LittleEndian.Uint16(root[8:]) != boltLeafPage {
		t.Fatalf("state file's root page is not a leaf")
	}
	// The first top-level bucket stored inline in the root page: its page lies in its value.
	inline := -1
	for i := 0; i < int(binary.LittleEndian.Uint16(root[10:])); i++ {
		e := root[boltPageHeader+i*boltElementSize:]
		v := int(binary.LittleEndian.Uint32(e[4:])) + int(binary.LittleEndian.Uint32(e[8:]))
		if binary.LittleEndian.Uint32(e)&boltBucketLeaf != 0 && binary.LittleEndian.Uint64(e[v:]) == 0 {
			inline = boltPageHeader + i*boltElementSize + v + boltBucketHeader
			break
		}
	}
	if inline < 0 {
		t.Fatalf("state file's root page holds no inline bucket")
	}
	return map[string][]byte{
		"cut to half":               b[:need/2],
		"cut to a tenth":            b[:need/10],
		"with a zero root":          change(m.root, func(p []byte) { clear(p) }),
		"with a zero freelist page": change(m.freelist, func(p []byte) { clear(p) }), // bbolt's open panicked on it
		"of its metas only":         b[:2*int(pageSize)],
		"with a freelist counting past its page": change(m.freelist, func(p []byte) {
			binary.LittleEndian.PutUint16(p[10:], 0xFFFF)
			binary.LittleEndian.PutUint64(p[boltPageHeader:], 1<<40)
		}),
		"with a root counting past its page": change(m.root, func(p []byte) { binary.LittleEndian.PutUint16(p[10:], 60000) }),
		"with a root key past its page": change(m.root, func(p []byte) {
			binary.LittleEndian.PutUint32(p[boltPageHeader+4:], 1<<30)
		}),
		"with an inline bucket counting past its value": change(m.root, func(p []byte) {
			binary.LittleEndian.PutUint16(p[inline+10:], 60000)
		}),
		// bbolt's checks take it, and Digest crashed on it (FuzzRestoreBackup).
		"with a top-level key that is not a bucket": change(m.root, func(p []byte) {
			binary.LittleEndian.PutUint32(p[boltPageHeader:], 0)
		}),
	}
}

// Given a state file's token, Restore moves that file into place, and takes nothing from
// outside its own directory tree, however the path is spelt, nor a file that is no state.
func TestRestoreTakesAStateFileFromItsOwnDirectory(t *testing.T) {
	src := newHarness(t)
	src.register("only")
	data := mustState(t, src.f)

	h := newHarness(t)
	h.register("a")
	before := h.digest()
	dir := filepath.Dir(h.path)
	outside := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(outside, data, 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, outside)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{outside, filepath.Join(dir, rel), junk, filepath.Join(dir, "missing.db")} {
		if err := h.f.Restore(io.NopCloser(bytes.NewReader(StateFileToken(path)))); err == nil {
			t.Fatalf("restore took %s", path)
		}
	}
	if h.digest() != before || !fileExists(outside) {
		t.Fatalf("a refused restore changed something")
	}

	inside := filepath.Join(dir, "snapshots", "1-2-3", "state.db")
	if err := os.MkdirAll(filepath.Dir(inside), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inside, data, 0o600); err != nil {
		t.Fatal(err)
	}
	was, err := os.Stat(inside)
	if err != nil {
		t.Fatal(err)
	}
	mustRestore(t, h.f, StateFileToken(inside))
	now, err := os.Stat(h.path)
	if err != nil || !os.SameFile(was, now) || fileExists(inside) {
		t.Fatalf("the state file was not moved into place (%v)", err)
	}
	if h.digest() != src.digest() {
		t.Fatalf("after the restore: digest %s, want %s", h.digest(), src.digest())
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestStateIsPointInTime(t *testing.T) {
	h := newHarness(t)
	h.register("a")
	st, err := h.f.OpenState()
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	want, wantApplied := h.digest(), h.f.AppliedIndex()
	h.register("b") // Apply goes on while the view is open
	var buf bytes.Buffer
	if _, err := st.WriteTo(&buf); err != nil {
		t.Fatalf("write state: %v", err)
	}
	if st.Applied() != wantApplied {
		t.Fatalf("state applied: got %d, want %d", st.Applied(), wantApplied)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("close state: %v", err)
	}
	fresh := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	mustRestore(t, fresh, buf.Bytes())
	if got := mustDigest(t, fresh); got != want {
		t.Fatalf("digest: got %s, want the state at OpenState() %s", got, want)
	}
	if fresh.AppliedIndex() != wantApplied {
		t.Fatalf("restored applied: got %d, want %d", fresh.AppliedIndex(), wantApplied)
	}
}

// A raft snapshot costs the same whatever the state's size: it is a reference to the file.
func TestSnapshotIsAReferenceOfConstantSize(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	small := mustSnapshot(t, h.f)
	for i := 0; i < 500; i++ {
		h.send("a", "b", SessionSingle, strings.Repeat("x", 300))
	}
	big := mustSnapshot(t, h.f)
	if len(small) != SnapshotRefLen || len(big) != SnapshotRefLen {
		t.Fatalf("snapshot sizes %d and %d, want both %d", len(small), len(big), SnapshotRefLen)
	}
	if got, ok := ParseSnapshotRef(big); !ok || got != h.f.AppliedIndex() {
		t.Fatalf("ParseSnapshotRef: got %d %v, want %d true", got, ok, h.f.AppliedIndex())
	}
	if _, ok := ParseSnapshotRef(mustState(t, h.f)[:SnapshotRefLen]); ok {
		t.Fatalf("the head of a state file parses as a reference")
	}
}

func TestRestoreOfAReference(t *testing.T) {
	h := newHarness(t)
	populate(h)
	ref := mustSnapshot(t, h.f)
	before := h.digest()
	// A file that covers the reference: nothing to do.
	mustRestore(t, h.f, ref)
	if h.digest() != before {
		t.Fatalf("restoring its own reference changed the state")
	}
	// A file behind it (lost, or replaced by an older one) cannot be restored from it.
	fresh := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	empty := mustDigest(t, fresh)
	err := fresh.Restore(io.NopCloser(bytes.NewReader(ref)))
	if !errors.Is(err, ErrStateBehindSnapshot) {
		t.Fatalf("restore of a reference ahead of the file: got %v, want ErrStateBehindSnapshot", err)
	}
	if mustDigest(t, fresh) != empty || fresh.AppliedIndex() != 0 {
		t.Fatalf("a refused restore changed the state")
	}
}

func TestOpenStateOnClosedFSM(t *testing.T) {
	h := newHarness(t)
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.f.OpenState(); !errors.Is(err, ErrClosed) {
		t.Fatalf("OpenState after Close: got %v, want ErrClosed", err)
	}
	if _, err := h.f.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Snapshot after Close: got %v, want ErrClosed", err)
	}
}

func TestReadsDuringRestore(t *testing.T) {
	h := newHarness(t)
	populate(h)
	data := mustState(t, h.f)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := h.f.NewestSeqs("alice"); err != nil {
					t.Errorf("read during restore: %v", err)
					return
				}
			}
		}()
	}
	for i := 0; i < 3; i++ {
		mustRestore(t, h.f, data)
	}
	close(stop)
	wg.Wait()
	var _ raft.BatchingFSM = h.f
}

// A follower's catch-up holds a read transaction for as long as it streams fsm.db (State).
// Writes that grow the file meanwhile must not wait for it: bbolt remaps a file that
// outgrows its mapping only once every read transaction has ended, so Apply would stall
// for the whole stream, and without a deadline.
func TestApplyDoesNotWaitForAnOpenState(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	content := []byte(`{"text":"` + strings.Repeat("x", 200<<10) + `"}`)
	var logs []*raft.Log
	for i := 0; i < 64; i++ { // ~13 MB: past every remap boundary bbolt's default sizing has below 16 MB
		logs = append(logs, h.next(CmdSendMessage, nil, &SendMessage{MsgID: fmt.Sprintf("big%d", i),
			SendID: "a", RecvID: "b", SessionType: SessionSingle, ContentType: 101, Content: content}))
	}
	st, err := h.f.OpenState()
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	defer func() { _ = st.Close() }() // closing it twice only reports it closed
	done := make(chan *Result, 1)
	go func() {
		var last *Result
		for _, l := range logs {
			last, _ = h.f.Apply(l).(*Result)
		}
		done <- last
	}()
	select {
	case r := <-done:
		if r == nil || r.Err != "" || r.Seq != uint64(len(logs)) {
			t.Fatalf("last send: got %+v, want seq %d", r, len(logs))
		}
	case <-time.After(30 * time.Second):
		_ = st.Close() // let the stalled Apply finish before the cleanup closes the FSM
		<-done
		t.Fatalf("writes growing fsm.db waited for an open State")
	}
}

// While a State is open, commits do not store bbolt's freelist, which would carry every
// page freed since the view began and grow with each commit; the first commit after the
// last State closes stores it again, so that the next open need not rebuild it.
func TestCommitsSkipTheFreelistWhileAStateIsOpen(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	n := 0
	send := func() {
		t.Helper()
		n++
		r, _ := h.f.Apply(h.next(CmdSendMessage, nil, &SendMessage{MsgID: fmt.Sprintf("m%d", n), SendID: "a", RecvID: "b",
			SessionType: SessionSingle, ContentType: 101, Content: []byte(`{"text":"hi"}`)})).(*Result)
		if r == nil || r.Err != "" {
			t.Fatalf("send %d: %+v", n, r)
		}
		h.f.Flush()
	}
	open := func() *State {
		t.Helper()
		st, err := h.f.OpenState()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	send()
	if !mustStoreFreelist(t, h.f.path) {
		t.Fatal("no freelist stored before any State was opened")
	}
	one, two := open(), open()
	defer one.Close() // if the test fails early: open States keep the FSM from closing
	defer two.Close()
	send()
	if mustStoreFreelist(t, h.f.path) {
		t.Fatal("a commit stored the freelist while two States were open")
	}
	_ = one.Close()
	_ = one.Close() // a second Close counts nothing
	send()
	if mustStoreFreelist(t, h.f.path) {
		t.Fatal("a commit stored the freelist while a State was open")
	}
	_ = two.Close()
	send()
	if !mustStoreFreelist(t, h.f.path) {
		t.Fatal("the first commit after the last State closed did not store the freelist")
	}
}

// mustStoreFreelist reports whether the meta page bbolt would open the file at path with
// points to a stored freelist.
func mustStoreFreelist(t *testing.T, path string) bool {
	t.Helper()
	stored, known := storesFreelist(t, path)
	if !known {
		t.Fatalf("%s: no valid bbolt meta page", path)
	}
	return stored
}

// A freelist over storedFreelistLimit (here after pruning every idempotency record) is not
// stored by each commit, which would write all of it every time; OpenState and a clean
// Close store it, so that the node receiving a State and the next open read it instead of
// scanning the file, and the commits store it again once it is small.
func TestCommitsSkipALargeFreelistAndCloseStoresIt(t *testing.T) {
	defer func(l int) { storedFreelistLimit = l }(storedFreelistLimit)
	storedFreelistLimit = 512 // 64 free pages
	h := newHarness(t)
	h.register("a", "b")
	const sends = 3000 // ~100 pages of idempotency records
	for i := 0; i < sends; i += 100 {
		var cmds [][]byte
		for j := i; j < i+100; j++ {
			cmds = append(cmds, sendCmd(t, idemKey(fmt.Sprintf("op%d", j)), fmt.Sprintf("m%d", j), "a", "b", "hi"))
		}
		for j, r := range h.applyBatch(cmds...) {
			if r.Err != "" {
				t.Fatalf("send %d: %+v", i+j, r)
			}
		}
	}
	if !mustStoreFreelist(t, h.path) {
		t.Fatal("a small freelist is not stored")
	}
	if r := h.mustApply(CmdPruneIdempotency, &PruneIdempotency{Before: h.now.UnixNano() + 1}); r.Pruned != sends {
		t.Fatalf("pruned %d records, want %d", r.Pruned, sends)
	}
	if free := h.f.db.Stats().FreelistInuse; free <= storedFreelistLimit {
		t.Fatalf("after the prune the freelist takes %d bytes, want more than %d for this test", free, storedFreelistLimit)
	}
	h.register("c")
	if mustStoreFreelist(t, h.path) {
		t.Fatal("a commit stored a freelist over the limit")
	}
	// A State's file carries a stored freelist, so that the node receiving it need not
	// rebuild it.
	st, err := h.f.OpenState()
	if err != nil {
		t.Fatal(err)
	}
	sent := filepath.Join(t.TempDir(), "sent.db")
	out, err := os.Create(sent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	_ = out.Close()
	_ = st.Close()
	if !mustStoreFreelist(t, sent) {
		t.Fatal("a State's file carries no freelist")
	}
	h.register("c2")
	if mustStoreFreelist(t, h.path) {
		t.Fatal("after the State closed, a commit stored a freelist over the limit")
	}

	// A crash now leaves a file whose newest commit has no freelist (a copy of it, as the
	// FSM still runs): opening it rebuilds the list and keeps every committed write.
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	if b, err := os.ReadFile(h.path); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(crashed, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if mustStoreFreelist(t, crashed) {
		t.Fatal("the crashed copy has a stored freelist; the test needs one without")
	}
	var log bytes.Buffer
	c := mustOpen(t, crashed, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if !strings.Contains(log.String(), "fsm.db read through") || !strings.Contains(log.String(), "opened after rebuilding its freelist") {
		t.Fatalf("opening a file without a stored freelist did not read it through first or report the rebuild; the open logged:\n%s", log.String())
	}
	if c.AppliedIndex() != h.f.AppliedIndex() {
		t.Fatalf("after a crash: applied index %d, want %d", c.AppliedIndex(), h.f.AppliedIndex())
	}
	if got, err := c.PullMessages("si_a_b", sends-9, sends+10, 100); err != nil || len(got) != 10 || got[9].Seq != sends {
		t.Fatalf("after a crash: %d messages from seq %d on (%v), want the last 10 up to seq %d", len(got), sends-9, err, sends)
	}
	if _, ok, _ := c.IdempotentResult(idemKey("op0")); ok {
		t.Fatal("after a crash: a pruned idempotency record is back")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if !mustStoreFreelist(t, h.path) {
		t.Fatal("Close did not store the freelist")
	}
	log.Reset()
	h.f = mustOpen(t, h.path, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if strings.Contains(log.String(), "fsm.db read through") || strings.Contains(log.String(), "rebuilding its freelist") {
		t.Fatalf("opening a file with a stored freelist read it through or reported a rebuild:\n%s", log.String())
	}
	if got, err := h.f.PullMessages("si_a_b", sends-9, sends+10, 100); err != nil || len(got) != 10 || got[9].Seq != sends {
		t.Fatalf("after reopening: %d messages from seq %d on (%v), want the last 10 up to seq %d", len(got), sends-9, err, sends)
	}
	// New writes take the free pages; once the list is small again, commits store it.
	storedFreelistLimit = 64 << 10
	h.register("d")
	if !mustStoreFreelist(t, h.path) {
		t.Fatal("a commit did not store a freelist under the limit")
	}
}
