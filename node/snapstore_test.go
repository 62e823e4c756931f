package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/internal/writeback"
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
	if sizes := storedSnapshotSizes(t, n4.dir); len(sizes) != 1 || sizes[0] <= int64(fsm.SnapshotRefLen) {
		t.Fatalf("n4 stores snapshots of %v bytes, want the state file it was sent", sizes)
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

// A state a leader sends is written to the file store through a writeback.Limiter, which
// finds the file raft's sink writes (a raft upgrade that moved it would switch writeback
// off silently, and fail here); a snapshot of a reference's size never opens the file at all.
func TestReceivedStateIsSentToDiskAsItIsWritten(t *testing.T) {
	dir := t.TempDir()
	fss, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	store := &stateSnapshots{SnapshotStore: fss, dir: dir}
	create := func(index uint64) *limitedSink {
		sink, err := store.Create(1, index, 1, raft.Configuration{}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return sink.(*limitedSink)
	}

	ref := create(10)
	if _, err := ref.Write(make([]byte, fsm.SnapshotRefLen)); err != nil {
		t.Fatal(err)
	}
	if ref.f != nil || ref.off {
		t.Fatalf("a reference snapshot opened its file for writeback (f %v, off %v)", ref.f, ref.off)
	}
	if err := ref.Close(); err != nil {
		t.Fatal(err)
	}

	state := create(20)
	block := bytes.Repeat([]byte{7}, 1<<20)
	const blocks = 2*writeback.Chunk>>20 + 3
	for range blocks {
		if _, err := state.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	if state.limit == nil || state.off {
		t.Fatalf("writeback was not used for the state file %s (off %v)", state.path, state.off)
	}
	if err := state.Close(); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := store.Open(state.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil || n != blocks<<20 || meta.Size != n {
		t.Fatalf("stored state read back %d bytes (meta %d, err %v), want %d", n, meta.Size, err, blocks<<20)
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
