package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/internal/proctest"
	"github.com/imnode/imnode/node"
)

// member is one server of a test: real memberlist on loopback, raft on the in-memory
// transport (every transport of a test is connected to every other).
type member struct {
	n  *node.Node
	c  *Cluster
	tr *raft.InmemTransport
}

type world struct {
	mu        sync.Mutex // guards members: reconcile loops read it through forward
	t         *testing.T
	maxVoters int // 0: the default
	// refuse lists members whose credentials check fails (node.Options.Prove).
	refuse  map[string]bool
	members []*member
	gossip  []string
}

// forward delivers internal calls straight to the target node (there is no HTTP server).
func (w *world) forward(_ context.Context, to, path string, body []byte) ([]byte, error) {
	w.mu.Lock()
	members := append([]*member(nil), w.members...)
	w.mu.Unlock()
	for _, m := range members {
		if m.n.ID() == to {
			status, out := m.n.HandleInternal(path, body)
			if status != 200 {
				return nil, fmt.Errorf("HTTP %d: %w", status, node.ErrNotSent)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("no node %s: %w", to, node.ErrNotSent)
}

func (w *world) start(id string, expect int, join []string) *member {
	w.t.Helper()
	cfg := config.Default()
	cfg.NodeID, cfg.DataDir = id, w.t.TempDir()
	cfg.BootstrapExpect, cfg.Join = expect, join
	cfg.GossipAddr = proctest.FreeAddr(w.t)
	cfg.Raft.HeartbeatTimeout = config.Duration(100 * time.Millisecond)
	cfg.Raft.ElectionTimeout = config.Duration(100 * time.Millisecond)
	cfg.Raft.LeaderLeaseTimeout = config.Duration(50 * time.Millisecond)
	cfg.Log.Level = "error"
	if w.maxVoters > 0 {
		cfg.Raft.MaxVoters = w.maxVoters
	}
	addr, tr := raft.NewInmemTransport(raft.ServerAddress(id))
	cfg.RaftAddr = string(addr)
	for _, m := range w.members {
		tr.Connect(m.tr.LocalAddr(), m.tr)
		m.tr.Connect(addr, tr)
	}
	f, err := fsm.Open(cfg.DataDir+"/fsm.db", fsm.Options{})
	if err != nil {
		w.t.Fatal(err)
	}
	prove := func(id, _ string) error {
		if w.refuse[id] {
			return fmt.Errorf("%w: test refuses %s", node.ErrPeerAuth, id)
		}
		return nil
	}
	n, err := node.New(node.Options{Config: cfg, FSM: f, Transport: tr, InmemStores: true, Forward: w.forward, Prove: prove})
	if err != nil {
		w.t.Fatal(err)
	}
	c, err := New(cfg, n, slog.New(slog.DiscardHandler))
	if err != nil {
		w.t.Fatal(err)
	}
	m := &member{n: n, c: c, tr: tr}
	w.mu.Lock()
	w.members = append(w.members, m)
	w.mu.Unlock()
	c.Start()
	w.gossip = append(w.gossip, cfg.GossipAddr)
	w.t.Cleanup(func() { _ = c.Shutdown(); _ = n.Shutdown(); _ = f.Close() })
	return m
}

// waitVoters waits until some leader's configuration has exactly want as voters.
func (w *world) waitVoters(want ...string) {
	w.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		for _, m := range w.members {
			if !m.n.IsLeader() {
				continue
			}
			servers, err := m.n.Servers()
			if err != nil {
				continue
			}
			got = got[:0]
			for _, s := range servers {
				if s.Suffrage == raft.Voter {
					got = append(got, string(s.ID))
				}
			}
			if fmt.Sprint(sorted(got)) == fmt.Sprint(sorted(want)) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.t.Fatalf("voters never became %v; last seen %v", want, got)
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestBootstrapExpectWaitsForAllThenBootstrapsOnce(t *testing.T) {
	w := &world{t: t}
	a := w.start("a", 3, nil)
	b := w.start("b", 3, []string{w.gossip[0]})
	time.Sleep(700 * time.Millisecond)
	if a.n.HasState() || b.n.HasState() {
		t.Fatal("bootstrapped with 2 of 3 expected servers visible")
	}
	w.start("c", 3, []string{w.gossip[0]})
	w.waitVoters("a", "b", "c")
}

func TestLateJoinerIsAddedAndPromoted(t *testing.T) {
	w := &world{t: t}
	w.start("a", 1, nil)
	w.waitVoters("a")
	// A node that expects 3 but sees a member already in a cluster joins it instead of
	// bootstrapping a second one.
	d := w.start("d", 3, []string{w.gossip[0]})
	w.waitVoters("a", "d")
	if !d.n.HasState() {
		t.Fatal("joined node reports no raft state")
	}
}

func TestMaxVotersKeepsExtraMembersNonVoters(t *testing.T) {
	w := &world{t: t, maxVoters: 2}
	w.start("a", 1, nil)
	w.waitVoters("a")
	w.start("b", 1, []string{w.gossip[0]})
	w.waitVoters("a", "b")
	w.start("c", 1, []string{w.gossip[0]})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		servers, _ := w.members[0].n.Servers()
		for _, s := range servers {
			if string(s.ID) == "c" {
				if s.Suffrage == raft.Voter {
					t.Fatal("a third voter was added beyond maxVoters 2")
				}
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("c was never added as a non-voter")
}

// TestUnprovenMemberIsNeverConfigured: a gossip member that fails the credentials check is
// never added to the raft configuration, and status says why.
func TestUnprovenMemberIsNeverConfigured(t *testing.T) {
	w := &world{t: t, refuse: map[string]bool{"stranger": true}}
	a := w.start("a", 1, nil)
	w.waitVoters("a")
	w.start("stranger", 1, []string{w.gossip[0]})
	b := w.start("b", 1, []string{w.gossip[0]})
	w.waitVoters("a", "b")
	// Give the leader reconcile rounds enough to add and promote the stranger.
	time.Sleep(2 * time.Second)
	servers, err := a.n.Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s.ID == "stranger" {
			t.Fatalf("the stranger is in the raft configuration as %v", s.Suffrage)
		}
	}
	for _, m := range []*member{a, b} {
		st := m.n.Status()
		found := false
		for _, mem := range st.Members {
			if mem.NodeID != "stranger" {
				if mem.Reason != "" {
					t.Fatalf("%s: member %s has reason %q", st.NodeID, mem.NodeID, mem.Reason)
				}
				continue
			}
			found = true
			if mem.Role != node.RoleNone || !strings.Contains(mem.Reason, "test refuses stranger") {
				t.Fatalf("%s shows the stranger as role %q reason %q; want none with the check's error", st.NodeID, mem.Role, mem.Reason)
			}
		}
		if !found {
			t.Fatalf("%s does not list the stranger", st.NodeID)
		}
	}
}
