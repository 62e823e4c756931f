package cluster

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// A non-voter is promoted once it has been seen alive for promoteAfter reconcile rounds and
// its applied index is within promoteLag entries of the leader's commit index: a voter that
// is far behind would count toward quorum without being able to help reach it.
const (
	promoteAfter = 2
	promoteLag   = 1024
)

func (c *Cluster) mainLoop() {
	defer c.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		c.checkMembers()
		if !c.n.HasState() {
			c.tryBootstrap()
		} else {
			c.setInCluster()
			if c.n.IsLeader() {
				c.reconcile()
			}
		}
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

// tryBootstrap bootstraps a new cluster once bootstrap-expect servers are visible and none
// of them belongs to a cluster already. Every such node computes the same set: the
// bootstrap-expect members with the smallest IDs.
func (c *Cluster) tryBootstrap() {
	select {
	case <-c.joinTried:
	default:
		return
	}
	var alive []Meta
	for _, p := range c.alivePeers() {
		meta := p.meta
		if !c.proven(meta.NodeID, meta.RaftAddr) {
			if meta.InCluster {
				// A member of a cluster whose credentials this node cannot confirm (yet):
				// bootstrapping a cluster of our own beside it would split the data, so
				// wait (its check's outcome is logged and shown in /cluster/status).
				return
			}
			continue
		}
		if meta.InCluster && meta.NodeID != c.cfg.NodeID {
			// Someone already leads a cluster: wait for its leader to add us. Raft state
			// appears when the first AppendEntries arrive.
			if c.joinedByLeader() {
				c.setInCluster()
			}
			return
		}
		alive = append(alive, meta)
	}
	if len(alive) < c.cfg.BootstrapExpect {
		return
	}
	sort.Slice(alive, func(i, j int) bool { return alive[i].NodeID < alive[j].NodeID })
	alive = alive[:c.cfg.BootstrapExpect]
	servers := map[string]string{}
	self := false
	for _, m := range alive {
		servers[m.NodeID] = m.RaftAddr
		self = self || m.NodeID == c.cfg.NodeID
	}
	if !self {
		return
	}
	c.log.Info("bootstrapping a new cluster", "servers", servers)
	if err := c.n.Bootstrap(servers); err != nil {
		c.log.Error("bootstrap", "err", err)
		return
	}
	c.setInCluster()
}

// joinedByLeader reports whether the raft configuration this node received names it.
func (c *Cluster) joinedByLeader() bool {
	servers, err := c.n.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if string(s.ID) == c.cfg.NodeID {
			return true
		}
	}
	return false
}

// reconcile runs on the leader: gossip members that are alive, proven (verify.go) and not
// configured are added (as non-voters, promoted after promoteAfter rounds while voters < maxVoters); members
// dead longer than the dead-node timeout are removed only if the remaining voters keep a
// healthy majority. (Members that leave gracefully remove themselves: see node.Leave.)
func (c *Cluster) reconcile() {
	servers, err := c.n.Servers()
	if err != nil {
		return
	}
	conf := map[string]raft.Server{}
	voters := 0
	for _, s := range servers {
		conf[string(s.ID)] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	alive := map[string]bool{}
	for _, p := range c.alivePeers() {
		meta := p.meta
		if meta.NodeID == c.cfg.NodeID || meta.Leaving || meta.Removed || c.n.RecentlyRemoved(meta.NodeID) {
			continue
		}
		alive[meta.NodeID] = true
		s, in := conf[meta.NodeID]
		if !c.proven(meta.NodeID, meta.RaftAddr) {
			// Not (yet) proven at the address it advertises: neither added nor moved.
			continue
		}
		switch {
		case !in:
			c.log.Info("adding member as non-voter", "node", meta.NodeID, "raft", meta.RaftAddr)
			if err := c.n.AddNonvoter(meta.NodeID, meta.RaftAddr); err != nil {
				c.log.Warn("add non-voter", "node", meta.NodeID, "err", err)
			}
		case string(s.Address) != meta.RaftAddr:
			c.log.Info("member changed its raft address", "node", meta.NodeID, "raft", meta.RaftAddr)
			if s.Suffrage == raft.Voter {
				_ = c.n.AddVoter(meta.NodeID, meta.RaftAddr)
			} else {
				_ = c.n.AddNonvoter(meta.NodeID, meta.RaftAddr)
			}
		case s.Suffrage != raft.Voter && voters < c.cfg.Raft.MaxVoters:
			c.mu.Lock()
			c.seenAsNV[meta.NodeID]++
			rounds := c.seenAsNV[meta.NodeID]
			c.mu.Unlock()
			if rounds >= promoteAfter && c.caughtUp(meta.NodeID) {
				c.log.Info("promoting member to voter", "node", meta.NodeID)
				if err := c.n.AddVoter(meta.NodeID, meta.RaftAddr); err == nil {
					voters++
				}
			}
		}
	}
	c.mu.Lock()
	var dead []string
	if to := c.cfg.Raft.DeadNodeTimeout.D(); to > 0 {
		for id, since := range c.deadAt {
			if _, in := conf[id]; in && !alive[id] && time.Since(since) > to {
				dead = append(dead, id)
			}
		}
	}
	c.mu.Unlock()
	sort.Strings(dead)
	for _, id := range dead {
		if !c.healthyAfterRemoving(conf, alive, id) {
			continue
		}
		c.log.Warn("removing member dead longer than the dead-node timeout", "node", id)
		if err := c.n.RemoveServer(context.Background(), id); err == nil {
			c.mu.Lock()
			delete(c.deadAt, id)
			c.mu.Unlock()
		}
	}
}

// caughtUp asks the member how far it has applied.
func (c *Cluster) caughtUp(id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	applied, _, err := c.n.PeerIndexes(ctx, id)
	if err != nil {
		return false
	}
	return applied+promoteLag >= c.n.Raft().CommitIndex()
}

// healthyAfterRemoving reports whether, with id removed, the healthy voters (this leader and
// the alive ones) are still a majority of the remaining voters.
func (c *Cluster) healthyAfterRemoving(conf map[string]raft.Server, alive map[string]bool, id string) bool {
	total, healthy := 0, 0
	for sid, s := range conf {
		if sid == id || s.Suffrage != raft.Voter {
			continue
		}
		total++
		if sid == c.cfg.NodeID || alive[sid] {
			healthy++
		}
	}
	return total > 0 && healthy > total/2
}
