package cluster

import (
	"time"
)

// Members prove themselves before they are taken in. Gossip is open to anyone who can reach
// the gossip port (and knows the gossip key, when one is set), so a gossip member is only a
// candidate: this node checks each alive member's raft port with the cluster-key handshake
// (node.ProveMember: mutual TLS first when configured), and the leader adds to the raft
// configuration only members whose proof succeeded for the raft address they advertise.
// Bootstrap counts only proven members too. Every node checks, not only the leader, so that
// /cluster/status on any node says why a member stays out (role "none" and a reason).

// recheckAfter is how long a failed proof stands before the member is checked again.
const recheckAfter = 10 * time.Second

// verdict is the outcome of the last check of one member.
type verdict struct {
	raftAddr string
	ok       bool
	reason   string
	at       time.Time
	checking bool
}

// checkMembers starts a check of every alive member that has no standing verdict for the
// raft address it advertises. Checks run in the background: a stranger that answers
// slowly must not hold up the main loop.
func (c *Cluster) checkMembers() {
	for _, p := range c.alivePeers() {
		id, addr := p.meta.NodeID, p.meta.RaftAddr
		if id == c.cfg.NodeID {
			continue
		}
		c.mu.Lock()
		v, had := c.verdicts[id]
		due := !had || v.raftAddr != addr || (!v.ok && time.Since(v.at) > recheckAfter)
		if !due || v.checking {
			c.mu.Unlock()
			continue
		}
		v.checking = true
		c.verdicts[id] = v
		c.mu.Unlock()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			err := c.n.ProveMember(id, addr)
			nv := verdict{raftAddr: addr, ok: err == nil, at: time.Now()}
			if err != nil {
				nv.reason = err.Error()
			}
			c.mu.Lock()
			old := c.verdicts[id]
			c.verdicts[id] = nv
			c.mu.Unlock()
			switch {
			case err != nil && (old.reason != nv.reason || old.raftAddr != addr):
				// Logged once per distinct failure, not at every recheck.
				c.log.Warn("gossip member refused: it is not added to the raft configuration",
					"node", id, "raft", addr, "err", err)
			case err == nil && !old.ok:
				c.log.Info("gossip member proved the cluster's credentials", "node", id, "raft", addr)
			}
		}()
	}
}

// proven reports whether member id proved itself at raftAddr. This node is always proven.
func (c *Cluster) proven(id, raftAddr string) bool {
	if id == c.cfg.NodeID {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.verdicts[id]
	return v.ok && v.raftAddr == raftAddr
}

// reasonLocked says why member id is not proven ("" if it is); c.mu is held.
func (c *Cluster) reasonLocked(id, raftAddr string) string {
	if id == c.cfg.NodeID {
		return ""
	}
	v, had := c.verdicts[id]
	switch {
	case v.ok && v.raftAddr == raftAddr:
		return ""
	case !had || v.reason == "" || v.raftAddr != raftAddr:
		return "not verified yet: the cluster's credentials are being checked"
	}
	return v.reason
}
