package jepsen

import (
	"math/rand"
	"testing"
	"time"
)

// startCluster starts a three-node cluster for a focused test and logs in.
func startCluster(t *testing.T, bin string) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c, err := NewCluster(bin, dir, 3, rand.New(rand.NewSource(time.Now().UnixNano())), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	for _, n := range c.Members() {
		if err := c.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(time.Now().Add(60 * time.Second)); err != nil {
		t.Fatalf("cluster not ready: %v", err)
	}
	if err := c.Login(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRemovedNodeStaysRemoved: an operator kills a follower and removes it with
// POST /cluster/remove_node right away, before gossip has noticed the death. The removal
// must stick. A regression test for a bug the membership nemesis found (fixed in 08134a2):
// the leader's reconcile loop added the node back, since gossip still said "alive", and
// promoted it to voter while it was dead; the next such change lost the quorum for good.
func TestRemovedNodeStaysRemoved(t *testing.T) {
	c := startCluster(t, needEnv(t))
	leader := c.Leader()
	if leader == nil {
		t.Fatal("no leader")
	}
	var victim *Node
	for _, n := range c.Members() {
		if n != leader {
			victim = n
			break
		}
	}
	c.Remove(victim)
	body := marshalBody(map[string]interface{}{"operationID": "rm-" + victim.ID, "nodeID": victim.ID})
	if _, err := setupWrite(c, "cluster/remove_node", body, time.Now().Add(30*time.Second)); err != nil {
		t.Fatalf("remove_node: %v", err)
	}
	// Watch for 15 s: the node must not come back, and in particular not as a voter.
	seen := map[string]time.Duration{}
	start := time.Now()
	for time.Since(start) < 15*time.Second {
		if l := c.Leader(); l != nil {
			if s, err := c.status(l); err == nil {
				for _, m := range s.Members {
					if _, ok := seen[m.Role+"/"+m.Gossip]; m.NodeID == victim.ID && m.Role != "none" && !ok {
						seen[m.Role+"/"+m.Gossip] = time.Since(start).Round(time.Millisecond)
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(seen) > 0 {
		t.Fatalf("killed and removed node %s came back into the raft configuration (role/gossip: first seen after remove_node): %v", victim.ID, seen)
	}
}
