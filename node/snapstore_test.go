package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/imnode/imnode/fsm"
)

// snapNode is a node on file stores (raft.db, snapshots/, fsm.db in dir) over an in-memory
// transport, keeping only a few log entries after a snapshot so that a node joining later
// must be sent the state.
type snapNode struct {
	n   *Node
	f   *fsm.FSM
	dir string
}

func startSnapNode(t *testing.T, id, dir string, tr *raft.InmemTransport) (*snapNode, error) {
	t.Helper()
	cfg := testConfig(id)
	cfg.DataDir = dir
	cfg.Raft.TrailingLogs = 5
	cfg.Raft.SnapshotThreshold = 1 << 30 // snapshots only when the test takes them
	f, err := fsm.Open(filepath.Join(dir, "fsm.db"), fsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{Config: cfg, FSM: f, Transport: tr})
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	sn := &snapNode{n: n, f: f, dir: dir}
	t.Cleanup(sn.stop)
	return sn, nil
}

func (sn *snapNode) stop() {
	_ = sn.n.Shutdown()
	_ = sn.f.Close()
}

// storedSnapshotSizes lists the size of each snapshot raft's file store holds in dir.
func storedSnapshotSizes(t *testing.T, dir string) []int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
	}
	return sizes
}

func connectAll(trs []*raft.InmemTransport) {
	for _, a := range trs {
		for _, b := range trs {
			if a != b {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
}

func waitDigest(t *testing.T, f *fsm.FSM, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := f.Digest()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("digest: got %s (%v), want %s", got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A snapshot is a reference of a few bytes on every node, and a node that joins after the
// log was compacted still gets the whole state: the leader streams fsm.db to it.
func TestSnapshotsAreReferencesAndANewNodeGetsTheState(t *testing.T) {
	var trs []*raft.InmemTransport
	servers := map[string]string{}
	for i := 1; i <= 4; i++ {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("n%d", i)))
		trs = append(trs, tr)
		if i <= 3 {
			servers[fmt.Sprintf("n%d", i)] = string(addr)
		}
	}
	connectAll(trs)
	var nodes []*snapNode
	for i := 1; i <= 3; i++ {
		sn, err := startSnapNode(t, fmt.Sprintf("n%d", i), t.TempDir(), trs[i-1])
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, sn)
	}
	for _, sn := range nodes {
		if err := sn.n.Bootstrap(servers); err != nil {
			t.Fatal(err)
		}
	}
	leader := waitLeader(t, nodes)
	for i := 0; i < 200; i++ {
		mustRegister(t, leader.n, fmt.Sprintf("u%03d", i), key(fmt.Sprintf("snap-%d", i)))
	}
	if err := leader.n.ConsistentRead(t.Context()); err != nil {
		t.Fatal(err)
	}
	want, err := leader.f.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range nodes {
		waitDigest(t, sn.f, want)
		if err := sn.n.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", sn.n.ID(), err)
		}
		sizes := storedSnapshotSizes(t, sn.dir)
		if len(sizes) != 1 || sizes[0] != int64(fsm.SnapshotRefLen) {
			t.Fatalf("%s stores snapshots of %v bytes, want one of %d (a reference)", sn.n.ID(), sizes, fsm.SnapshotRefLen)
		}
	}
	first, err := leader.n.logs.FirstIndex()
	if err != nil || first <= 1 {
		t.Fatalf("leader's log was not compacted: first index %d (%v)", first, err)
	}

	// n4 starts empty; the log it would need is gone, so raft sends it the snapshot.
	n4, err := startSnapNode(t, "n4", t.TempDir(), trs[3])
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.n.AddVoter("n4", string(trs[3].LocalAddr())); err != nil {
		t.Fatal(err)
	}
	waitDigest(t, n4.f, want)
	// It received the state into a file that became its fsm.db: what it stores is a reference.
	if sizes := storedSnapshotSizes(t, n4.dir); len(sizes) != 1 || sizes[0] != int64(fsm.SnapshotRefLen) {
		t.Fatalf("n4 stores snapshots of %v bytes, want one reference", sizes)
	}
	if left, _ := filepath.Glob(filepath.Join(n4.dir, "snapshots", "*", receivedStateName)); len(left) != 0 {
		t.Fatalf("n4 kept the received state beside fsm.db: %v", left)
	}
	// And it goes on with the others from there.
	mustRegister(t, leader.n, "after", key("snap-after"))
	if err := leader.n.ConsistentRead(t.Context()); err != nil {
		t.Fatal(err)
	}
	want, _ = leader.f.Digest()
	waitDigest(t, n4.f, want)
}

// A node whose fsm.db was lost, while its snapshot is a reference to that file, cannot
// rebuild the state from its own disk: it refuses to start and says what to do, instead of
// applying the rest of the log to an empty state.
func TestLostStateFileBehindAReferenceRefusesToStart(t *testing.T) {
	addr, tr := raft.NewInmemTransport("n1")
	dir := t.TempDir()
	sn, err := startSnapNode(t, "n1", dir, tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := sn.n.Bootstrap(map[string]string{"n1": string(addr)}); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, []*snapNode{sn})
	for i := 0; i < 20; i++ {
		mustRegister(t, sn.n, fmt.Sprintf("u%d", i), key(fmt.Sprintf("lost-%d", i)))
	}
	if err := sn.n.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	sn.stop()

	// Restarted as it was, it starts.
	again, err := startSnapNode(t, "n1", dir, tr)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	again.stop()

	if err := os.Remove(filepath.Join(dir, "fsm.db")); err != nil {
		t.Fatal(err)
	}
	_, err = startSnapNode(t, "n1", dir, tr)
	if !errors.Is(err, fsm.ErrStateBehindSnapshot) {
		t.Fatalf("start without fsm.db: got %v, want ErrStateBehindSnapshot", err)
	}
}

func waitLeader(t *testing.T, nodes []*snapNode) *snapNode {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, sn := range nodes {
			if sn.n.IsLeader() {
				return sn
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader within 10 s")
	return nil
}

// stateFile writes the state of an FSM holding users registered users to a file in dir and
// returns its path and the index it holds.
func stateFile(t *testing.T, dir string, users int) (string, uint64) {
	t.Helper()
	f, err := fsm.Open(filepath.Join(dir, "source.db"), fsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 1; i <= users; i++ {
		cmd, err := fsm.Encode(fsm.CmdRegisterUser, key(fmt.Sprintf("state-%d", i)), fsm.RegisterUser{User: fsm.User{UID: fmt.Sprintf("u%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		f.Apply(&raft.Log{Index: uint64(i), Type: raft.LogCommand, Data: cmd})
	}
	st, err := f.OpenState()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	path := filepath.Join(dir, "state")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path, st.Applied()
}

// receive writes the file at path into a new snapshot of store, in writes of chunk bytes
// (raft copies what the leader sends), and closes it.
func receive(t *testing.T, store *stateSnapshots, index uint64, path string, chunk int) (string, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := store.Create(1, index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(b); off += chunk {
		if _, err := sink.Write(b[off:min(len(b), off+chunk)]); err != nil {
			_ = sink.Cancel()
			return "", err
		}
	}
	return sink.ID(), sink.Close()
}

// newFileStateSnapshots returns a file snapshot store and an empty FSM in a new data dir.
func newFileStateSnapshots(t *testing.T) (*stateSnapshots, string) {
	t.Helper()
	dir := t.TempDir()
	fss, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsm.Open(filepath.Join(dir, "fsm.db"), fsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return &stateSnapshots{SnapshotStore: fss, fsm: f, dir: dir}, dir
}

// A state a leader sends is received into a file of its own (sent to disk as it grows), the
// snapshot is stored as a reference to the index it holds, and the FSM's restore moves the
// file into place: the same file, not a copy. What is neither a reference nor a state file is
// refused, so a token (or anything else) a leader might send is never stored.
func TestReceivedStateIsMovedIntoPlace(t *testing.T) {
	src, applied := stateFile(t, t.TempDir(), 50)
	store, dir := newFileStateSnapshots(t)
	f, fss := store.fsm, store.SnapshotStore

	// A reference written in pieces is stored as it is; it opens no file of its own.
	sink, err := store.Create(1, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := fsm.SnapshotRef(7)
	for _, b := range ref {
		if _, err := sink.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if sizes := storedSnapshotSizes(t, dir); len(sizes) != 1 || sizes[0] != int64(fsm.SnapshotRefLen) {
		t.Fatalf("a reference is stored as %v bytes", sizes)
	}
	if fileExists(receivedStatePath(dir, sink.ID())) {
		t.Fatal("a reference snapshot made a state file")
	}

	// Not a reference, not a state file: refused, nothing kept.
	for _, junk := range [][]byte{[]byte("short"), append(fsm.StateFileToken(src), bytes.Repeat([]byte{1}, 64<<10)...)} {
		junkPath := filepath.Join(t.TempDir(), "junk")
		if err := os.WriteFile(junkPath, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := receive(t, store, 15, junkPath, 1000); err == nil {
			t.Fatalf("a snapshot of %d junk bytes was stored", len(junk))
		}
	}
	if list, _ := store.List(); len(list) != 1 {
		t.Fatalf("%d snapshots stored after the junk, want 1", len(list))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.tmp")); len(left) != 0 {
		t.Fatalf("refused snapshots left %v", left)
	}

	// A state: stored as a reference to its index, the state beside it.
	id, err := receive(t, store, 20, src, 3000)
	if err != nil {
		t.Fatal(err)
	}
	received, err := os.Stat(receivedStatePath(dir, id))
	if err != nil {
		t.Fatalf("received state not kept: %v", err)
	}
	meta, rc, err := fss.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(rc)
	_ = rc.Close()
	if got, ok := fsm.ParseSnapshotRef(stored); !ok || got != applied {
		t.Fatalf("stored snapshot is %d bytes (meta %d), want a reference to %d", len(stored), meta.Size, applied)
	}

	// Raft restores the snapshot it received: the FSM takes the file itself.
	meta, rc, err = store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(rc); err != nil {
		t.Fatal(err)
	}
	now, err := os.Stat(filepath.Join(dir, "fsm.db"))
	if err != nil || !os.SameFile(now, received) {
		t.Fatalf("fsm.db is not the received file (%v)", err)
	}
	if fileExists(receivedStatePath(dir, id)) {
		t.Fatal("the received file is still beside the snapshot")
	}
	if f.AppliedIndex() != applied || meta.Size >= received.Size() {
		t.Fatalf("after the restore: applied %d, want %d; raft was told of %d bytes", f.AppliedIndex(), applied, meta.Size)
	}
	// From now on the snapshot is a reference like any other: opened, it streams fsm.db.
	meta, rc, err = store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	_ = rc.Close()
	if err != nil || n != meta.Size || n < received.Size()/2 {
		t.Fatalf("the snapshot streams %d bytes (meta %d, %v)", n, meta.Size, err)
	}
}

// A state received just before a crash, which the FSM had not taken, is taken at the next
// start; any other open of it (a leader sending it on) reads the file as a state; and a
// crash while a state was being received leaves nothing behind.
func TestReceivedStateIsTakenAfterACrash(t *testing.T) {
	src, applied := stateFile(t, t.TempDir(), 30)
	srcBytes, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	store, dir := newFileStateSnapshots(t)
	f, fss := store.fsm, store.SnapshotStore
	id, err := receive(t, store, 40, src, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	// An unfinished one, as a crash mid-stream leaves it.
	partial, err := store.Create(1, 50, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := partial.Write(srcBytes[:len(srcBytes)/2]); err != nil {
		t.Fatal(err)
	}

	// Raft's open for the restore gets the token; say the restore then failed (or the node
	// stopped). Opened again, as a leader would to send it on, it is the state.
	meta, rc, err := store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := io.ReadAll(rc)
	_ = rc.Close()
	if !bytes.Equal(token, fsm.StateFileToken(receivedStatePath(dir, id))) || meta.Size != int64(len(token)) {
		t.Fatalf("opened for the restore: %d bytes (meta %d), want the token", len(token), meta.Size)
	}
	meta, rc, err = store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	_ = rc.Close()
	if !bytes.Equal(got, srcBytes) || meta.Size != int64(len(srcBytes)) {
		t.Fatalf("opened for sending: %d bytes (meta %d), want the %d received", len(got), meta.Size, len(srcBytes))
	}

	// The restart: a new store on the same dir.
	again := &stateSnapshots{SnapshotStore: fss, fsm: f, dir: dir}
	if err := again.catchUp(); err != nil {
		t.Fatal(err)
	}
	if f.AppliedIndex() != applied || fileExists(receivedStatePath(dir, id)) {
		t.Fatalf("after catch-up: applied %d (want %d), received file left: %v", f.AppliedIndex(), applied,
			fileExists(receivedStatePath(dir, id)))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.tmp")); len(left) != 0 {
		t.Fatalf("the unfinished snapshot was left: %v", left)
	}
}

// A crash right after the FSM took a received file, before the file's removal from the
// snapshot's directory was on disk, can leave that name pointing at fsm.db itself. The next
// start removes it, even when the FSM is past the snapshot, so it is never sent as a state.
func TestTakenStateFileLeftBehindIsRemovedAtStart(t *testing.T) {
	src, applied := stateFile(t, t.TempDir(), 30)
	store, dir := newFileStateSnapshots(t)
	id, err := receive(t, store, 20, src, 1<<16) // a snapshot index below the state's
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.fsm.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "fsm.db"), receivedStatePath(dir, id)); err != nil {
		t.Fatal(err)
	}
	again := &stateSnapshots{SnapshotStore: store.SnapshotStore, fsm: store.fsm, dir: dir}
	if err := again.catchUp(); err != nil {
		t.Fatal(err)
	}
	if fileExists(receivedStatePath(dir, id)) || store.fsm.AppliedIndex() != applied {
		t.Fatalf("after the start: received name left %v, applied %d (want %d)",
			fileExists(receivedStatePath(dir, id)), store.fsm.AppliedIndex(), applied)
	}
}

// While the leader streams the state to a follower, compaction keeps the log after the
// snapshot's index, which the follower needs next; some time after the stream is closed
// the log is compacted as usual.
func TestLogIsHeldWhileTheStateIsSent(t *testing.T) {
	defer func(d time.Duration) { logHoldMin = d }(logHoldMin)
	logHoldMin = 0
	addr, tr := raft.NewInmemTransport("n1")
	sn, err := startSnapNode(t, "n1", t.TempDir(), tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := sn.n.Bootstrap(map[string]string{"n1": string(addr)}); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, []*snapNode{sn})
	users := 0
	registerAndSnapshot := func() {
		t.Helper()
		for range 20 {
			mustRegister(t, sn.n, fmt.Sprintf("u%03d", users), key(fmt.Sprintf("hold-%d", users)))
			users++
		}
		if err := sn.n.Raft().Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}
	firstIndex := func() uint64 {
		t.Helper()
		first, err := sn.n.logs.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		return first
	}

	registerAndSnapshot()
	list, err := sn.n.states.List()
	if err != nil || len(list) == 0 {
		t.Fatalf("snapshots %v, %v", list, err)
	}
	meta, stream, err := sn.n.states.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()  // if the test fails early: the stream holds a read transaction
	registerAndSnapshot() // TrailingLogs is 5: this would drop the log up to 15 entries from its end
	if first := firstIndex(); first > meta.Index {
		t.Fatalf("log starts at %d while the state of index %d is sent; the follower needs it and the entries after it", first, meta.Index)
	}
	if _, err := io.Copy(io.Discard, stream); err != nil {
		t.Fatal(err)
	}
	if err := stream.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sn.n.states.pins.limit(meta.Index) < meta.Index {
		if time.Now().After(deadline) {
			t.Fatal("the log is still held 10 s after the stream was closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	registerAndSnapshot()
	if first := firstIndex(); first <= meta.Index {
		t.Fatalf("log still starts at %d after the hold on %d was released", first, meta.Index)
	}
}

// The state stream is paced: however the writes are cut, the bytes come through whole and
// in order, and no faster than the rate.
func TestStateStreamIsPaced(t *testing.T) {
	data := make([]byte, 3<<20+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var out bytes.Buffer
	const rate = 8 << 20
	start := time.Now()
	w := &pacedWriter{w: &out, rate: rate, start: start}
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 700<<10) // neither a divisor nor a multiple of pacedChunk
		if got, err := w.Write(rest[:n]); got != n || err != nil {
			t.Fatalf("write: %d, %v; want %d", got, err, n)
		}
		rest = rest[n:]
	}
	if took, least := time.Since(start), time.Duration(float64(len(data)-pacedChunk)/rate*float64(time.Second)); took < least {
		t.Fatalf("%d bytes at %d B/s took %v, want at least %v", len(data), rate, took, least)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("the bytes written are not the bytes given")
	}
}

// The leader paces the state stream at raft.stateSendRate MiB/s.
func TestStateSendRateComesFromTheConfig(t *testing.T) {
	_, tr := raft.NewInmemTransport("n1")
	sn, err := startSnapNode(t, "n1", t.TempDir(), tr)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sn.n.states.sendRate, int64(testConfig("n1").Raft.StateSendRate)<<20; got != want || want == 0 {
		t.Fatalf("stream paced at %d B/s, want raft.stateSendRate = %d B/s", got, want)
	}
}

// A raft.db cut short (a copy of a data dir that stopped) made raft-boltdb's open die of a
// SIGBUS; the node now refuses to start and says why.
func TestNodeRefusesARaftDBCutShort(t *testing.T) {
	dir := t.TempDir()
	_, tr := raft.NewInmemTransport("")
	sn, err := startSnapNode(t, "n1", dir, tr)
	if err != nil {
		t.Fatal(err)
	}
	sn.stop()
	if err := os.Truncate(filepath.Join(dir, "raft.db"), 2*int64(os.Getpagesize())); err != nil { // its two meta pages
		t.Fatal(err)
	}
	if _, err := startSnapNode(t, "n1", dir, tr); err == nil || !strings.Contains(err.Error(), "raft.db") || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("start with raft.db cut short: got %v, want an error that says raft.db is cut short", err)
	}
}
