package main

import (
	"fmt"
	"github.com/imnode/imnode/internal/proctest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type statusMember struct {
	NodeID       string `json:"nodeID"`
	Role         string `json:"role"`
	Gossip       string `json:"gossip"`
	AppliedIndex uint64 `json:"appliedIndex"`
	Reachable    bool   `json:"reachable"`
}

func membersOf(t *testing.T, p *proc) []statusMember {
	t.Helper()
	r := mustOKGet(t, mustAdmin(t, p), "cluster/status")
	var st struct {
		Members []statusMember `json:"members"`
	}
	if err := r.DecodeData(&st); err != nil {
		t.Fatal(err)
	}
	return st.Members
}

// waitRoles waits until the leader's /cluster/status gives every listed node its role.
func waitRoles(t *testing.T, procs []*proc, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]string
	for time.Now().Before(deadline) {
		got = map[string]string{}
		for _, m := range membersOf(t, leaderOf(t, procs)) {
			got[m.NodeID] = m.Role
		}
		ok := true
		for id, role := range want {
			r := got[id]
			if r == "" {
				r = "none" // neither configured nor seen alive by gossip
			}
			if role == "voter" && r == "leader" {
				r = "voter"
			}
			if r != role {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("roles never became %v; last %v", want, got)
}

func TestGrowToFiveThenReplaceACrashedNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	procs := startCluster(t, 3)
	mustRegister(t, procs[0].Client(), "alice")
	mustRegister(t, procs[0].Client(), "bob")
	for i := 0; i < 20; i++ {
		sendText(t, mustAdmin(t, procs[i%3]), fmt.Sprintf("g%d", i), "alice", "bob", fmt.Sprintf("m%d", i))
	}

	// Two nodes started with -join become members: added, caught up, promoted to voters.
	dir := filepath.Dir(procs[0].DataDir)
	for _, id := range []string{"n4", "n5"} {
		p := newProc(t, id, filepath.Join(dir, id))
		p.Args = []string{"-bootstrap-expect", "3", "-join", procs[0].Gossip}
		p.Start()
		procs = append(procs, p)
	}
	waitRoles(t, procs, map[string]string{"n1": "voter", "n2": "voter", "n3": "voter", "n4": "voter", "n5": "voter"})
	want := 20
	for _, p := range procs[3:] {
		p.WaitReady()
		c := mustAdmin(t, p)
		if got := pullTexts(t, c, "si_alice_bob"); len(got) != want {
			t.Fatalf("%s caught up with %d messages, want %d", p.ID, len(got), want)
		}
		sendText(t, c, "via-"+p.ID, "bob", "alice", "via "+p.ID)
		want++
	}

	// kill -9 one node: it stays a voter (it counts for quorum) until removed by hand.
	victim := procs[1]
	if victim == leaderOf(t, procs) {
		victim = procs[2]
	}
	victim.Signal(syscall.SIGKILL)
	var rest []*proc
	for _, p := range procs {
		if p != victim {
			rest = append(rest, p)
		}
	}
	time.Sleep(2 * time.Second)
	for _, m := range membersOf(t, leaderOf(t, rest)) {
		if m.NodeID == victim.ID && (m.Role != "voter" || m.Reachable) {
			t.Fatalf("crashed %s: got role %s reachable %v, want a voter that does not answer", m.NodeID, m.Role, m.Reachable)
		}
	}
	admin := mustAdmin(t, rest[0])
	r, err := admin.Post("cluster/remove_node", map[string]string{"operationID": "rm1", "nodeID": "nope"})
	if err != nil || r.ErrCode != 1004 {
		t.Fatalf("remove_node of an unknown ID: got %v %v, want errCode 1004", err, r)
	}
	mustOK(t, admin, "cluster/remove_node", map[string]string{"operationID": "rm2", "nodeID": victim.ID})
	waitRoles(t, rest, map[string]string{victim.ID: "none"})
	for _, m := range membersOf(t, leaderOf(t, rest)) {
		if m.NodeID == victim.ID && m.Role != "none" {
			t.Fatalf("%s still configured after remove_node", victim.ID)
		}
	}
	// Writes go on through every remaining node.
	for i, p := range rest {
		sendText(t, mustAdmin(t, p), fmt.Sprintf("after-rm-%d", i), "alice", "bob", "after remove")
	}
}

func TestDeadNodeTimeoutRemovesACrashedVoter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	cfg := filepath.Join(t.TempDir(), "imnode.yaml")
	if err := os.WriteFile(cfg, []byte("raft:\n  deadNodeTimeout: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	procs := proctest.Launch(t, "d", 3, "-config", cfg)
	for _, p := range procs {
		p.WaitReady()
	}
	victim := procs[0]
	if victim == leaderOf(t, procs) {
		victim = procs[1]
	}
	victim.Signal(syscall.SIGKILL)
	var rest []*proc
	for _, p := range procs {
		if p != victim {
			rest = append(rest, p)
		}
	}
	waitRoles(t, rest, map[string]string{victim.ID: "none"})

	// With two voters left, losing one more would leave no healthy majority: it stays.
	second := rest[0]
	if second == leaderOf(t, rest) {
		second = rest[1]
	}
	last := rest[0]
	if last == second {
		last = rest[1]
	}
	c := mustAdmin(t, last) // before quorum is gone: minting a token reads the user linearizably
	second.Signal(syscall.SIGKILL)
	time.Sleep(5 * time.Second)
	r, err := c.Get("cluster/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(r.Raw), `"nodeID":"`+second.ID+`"`) {
		t.Fatalf("the dead-node timeout removed %s although that left no healthy majority: %s", second.ID, r.Raw)
	}
}

func TestRemoveNodeOfALiveNodeKeepsItOutUntilRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	procs := startCluster(t, 3)
	victim := procs[2]
	if victim == leaderOf(t, procs) {
		victim = procs[1]
	}
	mustOK(t, mustAdmin(t, procs[0]), "cluster/remove_node", map[string]string{"operationID": "rm-live", "nodeID": victim.ID})
	var rest []*proc
	for _, p := range procs {
		if p != victim {
			rest = append(rest, p)
		}
	}
	// It stays out while it runs, although gossip still sees it alive.
	for i := 0; i < 8; i++ {
		for _, m := range membersOf(t, leaderOf(t, rest)) {
			if m.NodeID == victim.ID && m.Role != "none" {
				t.Fatalf("%s was added back as %s %d×0.5 s after remove_node", victim.ID, m.Role, i)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Restarted with its data, it rejoins by itself.
	victim.Signal(syscall.SIGINT)
	victim.Start()
	victim.WaitReady()
	waitRoles(t, procs, map[string]string{victim.ID: "voter"})
}
