package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	dto "github.com/prometheus/client_model/go"

	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/fsm"
)

// testCluster is n nodes in one process on raft's in-memory transport. Forwarding calls the
// leader's HandleInternal directly; partition() cuts a node off both ways.
type testCluster struct {
	t     *testing.T
	nodes []*Node
	trans []*raft.InmemTransport

	mu  sync.Mutex
	cut map[string]bool
}

func testConfig(id string) config.Config {
	c := config.Default()
	c.NodeID = id
	c.ApplyTimeout = config.Duration(3 * time.Second)
	c.ReadTimeout = config.Duration(3 * time.Second)
	c.Raft.HeartbeatTimeout = config.Duration(100 * time.Millisecond)
	c.Raft.ElectionTimeout = config.Duration(100 * time.Millisecond)
	c.Raft.LeaderLeaseTimeout = config.Duration(50 * time.Millisecond)
	c.Log.Level = "error"
	return c
}

func mustCluster(t *testing.T, size int) *testCluster {
	t.Helper()
	return mustClusterWith(t, size, nil)
}

// mustClusterWith is mustCluster with each node's configuration changed by mod.
func mustClusterWith(t *testing.T, size int, mod func(*config.Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, cut: map[string]bool{}}
	servers := map[string]string{}
	for i := 0; i < size; i++ {
		id := fmt.Sprintf("n%d", i+1)
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(id))
		tc.trans = append(tc.trans, tr)
		servers[id] = string(addr)
	}
	for i, tr := range tc.trans {
		for j, other := range tc.trans {
			if i != j {
				tr.Connect(other.LocalAddr(), other)
			}
		}
	}
	for i := 0; i < size; i++ {
		id := fmt.Sprintf("n%d", i+1)
		cfg := testConfig(id)
		cfg.DataDir = t.TempDir()
		if mod != nil {
			mod(&cfg)
		}
		f, err := fsm.Open(cfg.DataDir+"/fsm.db", fsm.Options{})
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(Options{Config: cfg, FSM: f, Transport: tc.trans[i], InmemStores: true, Forward: tc.forwarder(id)})
		if err != nil {
			t.Fatal(err)
		}
		tc.nodes = append(tc.nodes, n)
		t.Cleanup(func() { _ = n.Shutdown(); _ = f.Close() })
	}
	for _, n := range tc.nodes {
		if err := n.Bootstrap(servers); err != nil {
			t.Fatal(err)
		}
	}
	tc.leader()
	return tc
}

func (tc *testCluster) node(id string) *Node {
	for _, n := range tc.nodes {
		if n.ID() == id {
			return n
		}
	}
	return nil
}

func (tc *testCluster) forwarder(from string) ForwardFunc {
	return func(ctx context.Context, to, path string, body []byte) ([]byte, error) {
		tc.mu.Lock()
		cut := tc.cut[from] || tc.cut[to]
		tc.mu.Unlock()
		if cut {
			return nil, fmt.Errorf("partitioned: %w", ErrNotSent)
		}
		status, out := tc.node(to).HandleInternal(path, body)
		if status != 200 {
			return nil, fmt.Errorf("HTTP %d: %w", status, ErrNotSent)
		}
		return out, nil
	}
}

// leader waits for a leader among the nodes not cut off.
func (tc *testCluster) leader() *Node {
	tc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range tc.nodes {
			tc.mu.Lock()
			cut := tc.cut[n.ID()]
			tc.mu.Unlock()
			if !cut && n.IsLeader() {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc.t.Fatal("no leader within 10 s")
	return nil
}

// partition cuts node id off from every other node (raft and forwarding).
func (tc *testCluster) partition(id string) {
	tc.mu.Lock()
	tc.cut[id] = true
	tc.mu.Unlock()
	for i, n := range tc.nodes {
		if n.ID() == id {
			tc.trans[i].DisconnectAll()
			for j, other := range tc.trans {
				if j != i {
					other.Disconnect(tc.trans[i].LocalAddr())
				}
			}
		}
	}
}

func (tc *testCluster) heal() {
	tc.mu.Lock()
	tc.cut = map[string]bool{}
	tc.mu.Unlock()
	for i, tr := range tc.trans {
		for j, other := range tc.trans {
			if i != j {
				tr.Connect(other.LocalAddr(), other)
			}
		}
	}
}

func mustRegister(t *testing.T, n *Node, uid string, key []byte) *fsm.Result {
	t.Helper()
	cmd, err := fsm.Encode(fsm.CmdRegisterUser, key, fsm.RegisterUser{User: fsm.User{UID: uid, Name: uid}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Propose(context.Background(), cmd)
	if err != nil {
		t.Fatalf("propose register %s on %s: %v", uid, n.ID(), err)
	}
	return res
}

func key(s string) []byte {
	k := make([]byte, fsm.IdemKeyLen)
	copy(k, s)
	return k
}

func TestProposeOnEveryNodeIsReadEverywhere(t *testing.T) {
	tc := mustCluster(t, 3)
	for i, n := range tc.nodes {
		uid := fmt.Sprintf("u%d", i)
		if res := mustRegister(t, n, uid, nil); res.Err != "" {
			t.Fatalf("register %s: %s", uid, res.Err)
		}
		// A linearizable read on every node sees the write right after it returned.
		for _, r := range tc.nodes {
			if err := r.ConsistentRead(context.Background()); err != nil {
				t.Fatalf("read on %s: %v", r.ID(), err)
			}
			if _, ok, _ := r.FSM().User(uid); !ok {
				t.Fatalf("%s does not see %s after a linearizable read", r.ID(), uid)
			}
		}
	}
}

func TestIdempotentProposeAppliesOnce(t *testing.T) {
	tc := mustCluster(t, 3)
	follower := tc.nodes[0]
	if follower.IsLeader() {
		follower = tc.nodes[1]
	}
	first := mustRegister(t, follower, "dup", key("op-1"))
	second := mustRegister(t, tc.leader(), "dup", key("op-1"))
	if first.Err != "" || second.Err != "" || first.RegIndex != second.RegIndex || !second.Replayed {
		t.Fatalf("got %+v then %+v, want one registration answered twice", first, second)
	}
	third := mustRegister(t, follower, "dup", key("op-2"))
	if !errors.Is(third.Error(), fsm.ErrUserExists) {
		t.Fatalf("got %v, want ErrUserExists for a new operation", third.Error())
	}
}

func TestIsolatedLeaderCannotServeReadsOrWrites(t *testing.T) {
	tc := mustCluster(t, 3)
	old := tc.leader()
	mustRegister(t, old, "before", nil)
	tc.partition(old.ID())

	// The cut-off leader must neither acknowledge a write nor answer a linearizable read.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := old.ConsistentRead(ctx); err == nil {
		t.Fatal("isolated leader served a linearizable read")
	}
	cmd, _ := fsm.Encode(fsm.CmdRegisterUser, nil, fsm.RegisterUser{User: fsm.User{UID: "lost"}})
	if _, err := old.Propose(context.Background(), cmd); !errors.Is(err, ErrNotApplied) && !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("got %v, want ErrNotApplied or ErrOutcomeUnknown from an isolated leader", err)
	}

	// The majority elects a new leader and goes on.
	nl := tc.leader()
	if nl.ID() == old.ID() {
		t.Fatal("isolated node still the leader")
	}
	mustRegister(t, nl, "after", nil)

	tc.heal()
	if err := old.ConsistentRead(context.Background()); err != nil {
		t.Fatalf("healed node read: %v", err)
	}
	if _, ok, _ := old.FSM().User("after"); !ok {
		t.Fatal("healed node did not catch up")
	}
	if _, ok, _ := old.FSM().User("lost"); ok {
		// It may have been applied only if a majority committed it, which it could not.
		t.Fatal("a write proposed to an isolated leader was applied")
	}
}

func TestStatusListsConfiguredMembers(t *testing.T) {
	tc := mustCluster(t, 3)
	st := tc.leader().Status()
	if st.State != "leader" || len(st.Members) != 3 {
		t.Fatalf("got %+v, want leader with 3 members", st)
	}
	if err := tc.leader().RemoveServer(context.Background(), "nope"); !errors.Is(err, ErrUnknownServer) {
		t.Fatalf("got %v, want ErrUnknownServer", err)
	}
}

// A follower is ready only while it has applied close to the leader's commit index, which
// it asks the leader for: its own commit index is as far behind as its log.
func TestFollowerReadyFollowsTheLeadersCommitIndex(t *testing.T) {
	tc := mustCluster(t, 3)
	l, f := tc.leader(), tc.follower()
	deadline := time.Now().Add(5 * time.Second)
	for !f.Ready() || !l.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 5 s: leader %v, follower %v", l.Ready(), f.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	applied := f.fsm.AppliedIndex()
	if f.raft.CommitIndex() > applied+readyLag {
		t.Fatalf("the follower's own commit index %d is not within %d of its applied %d", f.raft.CommitIndex(), readyLag, applied)
	}
	// The leader's commit index is readyLag+1 entries past what the follower has applied
	// when it asks, and no write brings the follower there within readyWait.
	f.followerReads.fetch = func() (uint64, error) { return f.fsm.AppliedIndex() + readyLag + 1, nil }
	if f.Ready() {
		t.Fatalf("ready %d entries behind the leader's commit index", readyLag+1)
	}
	f.followerReads.fetch = func() (uint64, error) { return 0, errors.New("leader unreachable") }
	if f.Ready() {
		t.Fatalf("ready without an answer from the leader")
	}
	f.followerReads.fetch = f.forwardReadIndex
	if !f.Ready() {
		t.Fatalf("not ready with the leader's own answer")
	}
	// A node that is not ready says so within readyWait, whether the leader answers late
	// with an index the node does not reach or never answers: the whole of Ready fits in a
	// probe's one-second timeout.
	stuck := make(chan struct{})
	defer close(stuck)
	for _, c := range []struct {
		name  string
		fetch func() (uint64, error)
	}{
		{"a late answer, an index not reached", func() (uint64, error) {
			time.Sleep(readyWait / 2)
			return f.fsm.AppliedIndex() + 10*readyLag, nil
		}},
		{"no answer", func() (uint64, error) { <-stuck; return 0, errors.New("stopped") }},
	} {
		f.followerReads.fetch = c.fetch
		start := time.Now()
		if f.Ready() {
			t.Fatalf("%s: ready", c.name)
		}
		if took := time.Since(start); took > readyWait+150*time.Millisecond {
			t.Fatalf("%s: not ready after %v, want within readyWait (%v)", c.name, took, readyWait)
		}
	}
}

// A node that keeps up with a burst of entries is ready while its applied index trails the
// leader's commit index by more than readyLag, since it applies that index within
// readyWait. (Under raft.noCommandPacking at ~6,400 entries/s, /readyz answered 503 on
// every node a quarter of the time.)
func TestReadyWhileApplyingABurst(t *testing.T) {
	tc := mustCluster(t, 3)
	l, f := tc.leader(), tc.follower()
	mustRegister(t, l, "a", key("a"))
	mustRegister(t, l, "b", key("b"))
	l.cfg.Raft.NoCommandPacking = true // one entry per write
	const writes = readyLag + 20
	cmds := make([][]byte, writes)
	for i := range cmds {
		text := fmt.Sprint("burst", i)
		cmds[i] = sendCmd(t, key(text), "a", "b", text)
	}
	target := l.raft.LastIndex() + readyLag + 1
	done := make(chan error, 1)
	var once sync.Once
	// The burst starts when the follower has the leader's commit index in hand, so that its
	// applied index is more than readyLag behind when Ready compares the two.
	f.followerReads.fetch = func() (uint64, error) {
		once.Do(func() {
			go func() {
				errs := make(chan error, writes)
				var wg sync.WaitGroup
				for _, cmd := range cmds {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := l.Propose(context.Background(), cmd); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				close(errs)
				done <- <-errs
			}()
		})
		return target, nil
	}
	if !f.Ready() {
		t.Fatalf("not ready while applying %d entries up to the leader's commit index %d (applied %d)", writes, target, f.fsm.AppliedIndex())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.followerReads.fetch = f.forwardReadIndex
}

func TestLeaderRefusesAnUndecodableForwardedCommand(t *testing.T) {
	tc := mustCluster(t, 3)
	l := tc.leader()
	// A new leader appends a no-op entry just after it takes office; the barrier's entry
	// follows it, so the log holds both before it is measured (make test once read 1, then 3).
	if err := l.raft.Barrier(10 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	before := l.raft.LastIndex()
	good, err := fsm.Encode(fsm.CmdRegisterUser, nil, fsm.RegisterUser{User: fsm.User{UID: "good"}})
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte{byte(fsm.CmdSendMessage), 0}, 0xc1, 0xff)
	body, err := fsm.EncodeValue([][]byte{bad, good})
	if err != nil {
		t.Fatal(err)
	}
	status, out := l.HandleInternal(PathPropose, body)
	var reps []internalReply
	if err := fsm.DecodeValue(out, &reps); status != 200 || err != nil || len(reps) != 2 {
		t.Fatalf("got HTTP %d %q (%v), want two replies", status, out, err)
	}
	if reps[0].Status != replyError || reps[1].Status != replyOK || reps[1].Result.Err != "" {
		t.Fatalf("got %+v, want the bad command refused and the good one applied", reps)
	}
	if got := l.raft.LastIndex(); got != before+1 {
		t.Fatalf("log grew from %d to %d, want by one entry: the bad command was proposed", before, got)
	}
	if status, _ := l.HandleInternal(PathPropose, []byte("not msgpack")); status != 400 {
		t.Fatalf("a malformed batch: got HTTP %d, want 400", status)
	}
	mustRegister(t, l, "still-fine", nil)
}

// Writes forwarded at once by a follower share batch calls, and each gets its own result.
func TestForwardedWritesAreBatched(t *testing.T) {
	tc := mustCluster(t, 3)
	f := tc.follower()
	const writes = 200
	results := make([]*fsm.Result, writes)
	var wg sync.WaitGroup
	for i := 0; i < writes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = mustRegister(t, f, fmt.Sprintf("u%03d", i), nil)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r == nil || r.Err != "" {
			t.Fatalf("write %d: got %+v", i, r)
		}
	}
	if err := f.ConsistentRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < writes; i++ {
		if _, ok, err := f.fsm.User(fmt.Sprintf("u%03d", i)); !ok || err != nil {
			t.Fatalf("user u%03d missing on the follower (%v)", i, err)
		}
	}
	var m dto.Metric
	if err := f.metrics.forwardBatch.Write(&m); err != nil {
		t.Fatal(err)
	}
	// A call that fails as "not applied" (say, the leader changed on a loaded machine) is
	// sent again, so sent may exceed writes; batching means fewer calls than writes sent.
	calls, sent := m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	if sent < writes || float64(calls) >= sent {
		t.Fatalf("%v writes went in %d calls, want at least %d writes in fewer calls", sent, calls, writes)
	}
}

// holdForwardCalls makes f's first hold forward calls to /internal/propose wait until
// release (also called at cleanup, before the cluster stops); entered gets a value as each
// of them reaches the wire.
func holdForwardCalls(t *testing.T, f *Node, hold int32) (entered <-chan struct{}, release func()) {
	gate, in := make(chan struct{}), make(chan struct{}, hold)
	release = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	var calls atomic.Int32
	forward := f.forward
	f.forward = func(ctx context.Context, to, path string, body []byte) ([]byte, error) {
		if path == PathPropose && calls.Add(1) <= hold {
			in <- struct{}{}
			<-gate
		}
		return forward(ctx, to, path, body)
	}
	return in, release
}

// proposeAsync proposes the registration of uid on n and returns where its error will be.
func proposeAsync(n *Node, uid string) <-chan error {
	done := make(chan error, 1)
	go func() {
		cmd, err := fsm.Encode(fsm.CmdRegisterUser, nil, fsm.RegisterUser{User: fsm.User{UID: uid, Name: uid}})
		if err == nil {
			_, err = n.Propose(context.Background(), cmd)
		}
		done <- err
	}()
	return done
}

// mustAllSucceed waits for every write of dones, then for f's forward senders to stop.
func mustAllSucceed(t *testing.T, f *Node, dones []<-chan error) {
	t.Helper()
	for i, done := range dones {
		if err := <-done; err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		f.batcher.mu.Lock()
		senders, queued := f.batcher.senders, len(f.batcher.queue)
		f.batcher.mu.Unlock()
		if senders == 0 && queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the writes: %d senders, %d queued", senders, queued)
		}
	}
}

// A forwarded write does not wait for a call slot longer than maxForwardWait: with all
// maxForwardCalls calls stuck on the wire, the next write goes out in a call of its own
// and is answered while they are still stuck.
func TestForwardQueueWaitIsBounded(t *testing.T) {
	tc := mustCluster(t, 3)
	f := tc.follower()
	entered, release := holdForwardCalls(t, f, maxForwardCalls)
	var stuck []<-chan error
	for i := range maxForwardCalls {
		stuck = append(stuck, proposeAsync(f, fmt.Sprintf("stuck%d", i)))
		select {
		case <-entered: // one more call holds a slot
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d never reached the wire", i)
		}
	}
	start := time.Now()
	select {
	case err := <-proposeAsync(f, "next"):
		if err != nil {
			t.Fatalf("write beside %d stuck calls: %v", maxForwardCalls, err)
		}
		t.Logf("answered after %v with %d calls stuck", time.Since(start), maxForwardCalls)
	case <-time.After(5 * time.Second):
		t.Fatalf("a write waited 5 s behind %d stuck calls", maxForwardCalls)
	}
	var over dto.Metric
	if err := f.metrics.forwardOver.Write(&over); err != nil {
		t.Fatal(err)
	}
	if got := over.GetCounter().GetValue(); got < 1 {
		t.Fatalf("imnode_forward_overflow_calls_total = %v, want at least 1", got)
	}
	release()
	mustAllSucceed(t, f, stuck)
}

// The extra calls stop at maxForwardOverflow: with every call stuck (a leader that does not
// answer), overdue writes queue rather than open more calls, and all go once calls return.
func TestForwardCallsAreCapped(t *testing.T) {
	tc := mustCluster(t, 3)
	f := tc.follower()
	entered, release := holdForwardCalls(t, f, 1000)
	var writes []<-chan error
	onWire := 0
	for deadline := time.Now().Add(10 * time.Second); onWire < maxForwardOverflow; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls reached the wire after %d writes", onWire, len(writes))
		}
		writes = append(writes, proposeAsync(f, fmt.Sprintf("w%d", len(writes))))
		time.Sleep(2 * maxForwardWait)
		for drained := false; !drained; {
			select {
			case <-entered:
				onWire++
			default:
				drained = true
			}
		}
	}
	for range 4 {
		writes = append(writes, proposeAsync(f, fmt.Sprintf("w%d", len(writes))))
	}
	time.Sleep(20 * maxForwardWait) // several overdue checks
	select {
	case <-entered:
		t.Fatalf("a call beyond maxForwardOverflow (%d) reached the wire", maxForwardOverflow)
	default:
	}
	f.batcher.mu.Lock()
	senders, queued := f.batcher.senders, len(f.batcher.queue)
	f.batcher.mu.Unlock()
	if senders != maxForwardOverflow || queued == 0 {
		t.Fatalf("with every call stuck: %d senders, %d queued; want %d senders and writes queued",
			senders, queued, maxForwardOverflow)
	}
	release()
	mustAllSucceed(t, f, writes)
}

// A forwarded batch call and a packed entry carry at most their count limit of commands
// (maxForwardBatch, maxPackCommands) and, past the first, at most maxBodyBytes of them.
func TestBatchLimits(t *testing.T) {
	cfg := config.Default()
	cfg.MaxBodyBytes = 1000
	n := &Node{cfg: cfg}
	b, p := &forwardBatcher{n: n}, &packer{n: n}
	queue := func(sizes ...int) {
		b.queue, p.queue = nil, nil
		for _, s := range sizes {
			b.queue = append(b.queue, &forwarded{cmd: make([]byte, s)})
			p.queue = append(p.queue, &packed{cmd: make([]byte, s)})
		}
	}
	for _, tc := range []struct {
		sizes []int
		want  int
	}{
		{nil, 0},
		{[]int{5000}, 1},
		{[]int{5000, 1}, 1},
		{[]int{400, 400, 400}, 2},
		{[]int{1000, 1}, 1},
		{[]int{500, 500}, 2},
	} {
		queue(tc.sizes...)
		if got := b.takeable(); got != tc.want {
			t.Fatalf("forward batch of sizes %v: got %d, want %d", tc.sizes, got, tc.want)
		}
		if got := p.takeable(); got != tc.want {
			t.Fatalf("packed entry of sizes %v: got %d, want %d", tc.sizes, got, tc.want)
		}
	}
	sizes := make([]int, max(maxForwardBatch, maxPackCommands)+10)
	for i := range sizes {
		sizes[i] = 1
	}
	queue(sizes...)
	if got := b.takeable(); got != maxForwardBatch {
		t.Fatalf("%d small writes: forward batch got %d, want %d", len(sizes), got, maxForwardBatch)
	}
	if got := p.takeable(); got != maxPackCommands {
		t.Fatalf("%d small commands: packed entry got %d, want %d", len(sizes), got, maxPackCommands)
	}
}
