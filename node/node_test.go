package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

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

func TestLeaderRefusesAnUndecodableForwardedCommand(t *testing.T) {
	tc := mustCluster(t, 3)
	l := tc.leader()
	before := l.raft.LastIndex()
	status, body := l.HandleInternal(PathPropose, append([]byte{byte(fsm.CmdSendMessage), 0}, 0xc1, 0xff))
	var rep internalReply
	if err := fsm.DecodeValue(body, &rep); status != 200 || err != nil || rep.Status != replyError {
		t.Fatalf("got HTTP %d %+v (%v), want a refusal", status, rep, err)
	}
	if got := l.raft.LastIndex(); got != before {
		t.Fatalf("log grew from %d to %d: the command was proposed", before, got)
	}
	mustRegister(t, l, "still-fine", nil)
}
