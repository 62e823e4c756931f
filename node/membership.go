package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/imnode/imnode/fsm"
)

// Servers returns the raft configuration: ID -> suffrage ("voter" or "nonvoter") and
// address.
func (n *Node) Servers() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// AddVoter adds or promotes a voter (leader only).
func (n *Node) AddVoter(id, raftAddr string) error {
	return n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, 10*time.Second).Error()
}

// AddNonvoter adds a non-voter (leader only).
func (n *Node) AddNonvoter(id, raftAddr string) error {
	return n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, 10*time.Second).Error()
}

// RemoveServer removes id from the raft configuration, through the leader from any node,
// retrying until ctx ends. An ID that is not configured is ErrUnknownServer.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout.D())
	defer cancel()
	for {
		var err error
		if n.IsLeader() {
			err = n.removeLocal(id)
		} else if leader := n.Leader(); leader == "" {
			err = ErrNotApplied
		} else if body, ferr := n.forward(ctx, leader, PathRemove, []byte(id)); ferr != nil {
			err = ErrNotApplied
		} else {
			var rep internalReply
			if derr := fsm.DecodeValue(body, &rep); derr != nil {
				return derr
			}
			switch rep.Status {
			case replyOK:
				err = nil
			case replyNotApplied:
				err = ErrNotApplied
			default:
				if rep.Err == ErrUnknownServer.Error() {
					return ErrUnknownServer
				}
				return fmt.Errorf("leader %s: %s", leader, rep.Err)
			}
		}
		if !errors.Is(err, ErrNotApplied) {
			return err
		}
		select {
		case <-ctx.Done():
			return ErrNotApplied
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// removedFor is how long a leader remembers an ID it removed: long enough for the removed
// node to learn it (PathRemoved) and say so in its gossip metadata.
const removedFor = 30 * time.Second

// SetOnRemoved sets what this node does when the leader tells it that it was removed from
// the configuration while still running (the cluster layer stops asking to be added).
func (n *Node) SetOnRemoved(f func()) { n.onRemoved.Store(&f) }

// RecentlyRemoved reports whether this node, as leader, removed id in the last removedFor:
// the reconcile loop must not add it straight back because gossip still sees it alive.
func (n *Node) RecentlyRemoved(id string) bool {
	n.removedMu.Lock()
	defer n.removedMu.Unlock()
	at, ok := n.removed[id]
	if ok && time.Since(at) > removedFor {
		delete(n.removed, id)
		return false
	}
	return ok
}

// removeLocal removes id on this node, which must lead. A removed node that is still
// running is told so (best effort), so that it stops asking to be added back.
func (n *Node) removeLocal(id string) error {
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	found := false
	for _, s := range servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return ErrUnknownServer
	}
	n.removedMu.Lock()
	n.removed[id] = time.Now()
	n.removedMu.Unlock()
	err = n.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error()
	if err != nil {
		n.removedMu.Lock()
		delete(n.removed, id)
		n.removedMu.Unlock()
		if notApplied(err) {
			return ErrNotApplied
		}
		return err
	}
	if id != n.id {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = n.forward(ctx, id, PathRemoved, nil)
		cancel()
	}
	return nil
}

// Leave removes this node from the raft configuration: it hands leadership over first if
// it leads, then asks the leader to remove it, retrying until ctx ends. The last voter of a
// cluster has nobody to ask and stays.
func (n *Node) Leave(ctx context.Context) error {
	for {
		servers, err := n.Servers()
		if err != nil {
			return err
		}
		voters, in := 0, false
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
			in = in || string(s.ID) == n.id
		}
		if !in || (voters == 1 && n.IsLeader()) {
			return nil
		}
		if n.IsLeader() {
			if err := n.TransferLeadership(); err != nil {
				n.log.Warn("leadership transfer before leaving", "err", err)
			}
		} else if leader := n.Leader(); leader != "" {
			body, err := n.forward(ctx, leader, PathRemove, []byte(n.id))
			if err == nil {
				var rep internalReply
				if derr := fsm.DecodeValue(body, &rep); derr == nil && (rep.Status == replyOK || rep.Err == ErrUnknownServer.Error()) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("leave: still in the configuration: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TransferLeadership hands leadership to another voter (used before leaving).
func (n *Node) TransferLeadership() error {
	if !n.IsLeader() {
		return nil
	}
	return n.raft.LeadershipTransfer().Error()
}

const (
	// readyLag is how many entries behind the leader's commit index a node may have
	// applied and be ready at once.
	readyLag = 64
	// readyWait bounds how long Ready may take when the node is not ready at once: asking
	// the leader for its commit index and applying up to it both fit in it. It is under a
	// second, the timeout of a Kubernetes probe by default, so a probe gets a 503 rather
	// than a timeout, and a WebSocket client is refused within it.
	readyWait = 800 * time.Millisecond
)

// Ready reports whether the node knows a leader and has applied the leader's commit index:
// at once if it is within readyLag entries of it, or else within readyWait (which also
// bounds the question to the leader).
//
// A follower asks the leader for that index, with the read-index call that linearizable
// reads make (and shared with them): its own commit index only moves with the entries it
// receives, so it is as far behind as its log (a wiped node answered /readyz 200 for the
// 98 s it took to receive a 5.8 GB fsm.db). A follower that cannot reach the leader within
// readyWait is not ready.
//
// The wait to apply is there for heavy loads of small entries (raft.noCommandPacking,
// ~6,400 entries/s): the applied index of a node that keeps up then trails by an fsm.db
// group commit and the entries in replication, more than readyLag (/readyz answered 503 a
// quarter of the time on every node). A node receiving a state or a long log does not
// catch up within readyWait.
func (n *Node) Ready() bool {
	if n.Leader() == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	defer cancel()
	commit := n.raft.CommitIndex()
	if !n.IsLeader() {
		idx, err := n.followerReads.get(ctx)
		if err != nil {
			return false
		}
		commit = idx
	}
	if n.fsm.AppliedIndex()+readyLag >= commit {
		return true
	}
	return n.waitApplied(ctx, commit) == nil
}

// Status joins raft's view with gossip's into the /cluster/status answer.
func (n *Node) Status() Status {
	leaderAddr, leaderID := n.raft.LeaderWithID()
	st := Status{
		NodeID:       n.id,
		State:        stateName(n.raft.State()),
		Term:         n.raft.CurrentTerm(),
		LeaderID:     string(leaderID),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.fsm.AppliedIndex(),
		LastIndex:    n.raft.LastIndex(),
	}
	_ = leaderAddr
	gossip := map[string]MemberInfo{}
	for _, m := range n.memberList() {
		gossip[m.NodeID] = m
		if m.NodeID == st.LeaderID {
			st.LeaderHTTPAddr = m.HTTPAddr
		}
	}
	seen := map[string]bool{}
	servers, _ := n.Servers()
	for _, s := range servers {
		id := string(s.ID)
		seen[id] = true
		m := Member{MemberInfo: gossip[id], Role: RoleVoter}
		m.NodeID, m.RaftAddr, m.Reason = id, string(s.Address), ""
		if m.Gossip == "" {
			m.Gossip = "dead" // configured, never seen by gossip: not reachable
		}
		switch {
		case id == st.LeaderID:
			m.Role = RoleLeader
		case s.Suffrage != raft.Voter:
			m.Role = RoleNonvoter
		}
		st.Members = append(st.Members, m)
	}
	for id, g := range gossip {
		if !seen[id] {
			st.Members = append(st.Members, Member{MemberInfo: g, Role: RoleNone})
		}
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].NodeID < st.Members[j].NodeID })
	var wg sync.WaitGroup
	for i := range st.Members {
		m := &st.Members[i]
		if m.Role == RoleNone {
			// Internal calls carry the cluster key: never to a member the cluster has
			// not taken in (it may be a stranger).
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if applied, last, err := n.PeerIndexes(ctx, m.NodeID); err == nil {
				m.AppliedIndex, m.LastIndex, m.Reachable = applied, last, true
				if st.CommitIndex > applied {
					m.Lag = st.CommitIndex - applied
				}
			}
		}()
	}
	wg.Wait()
	return st
}

// PeerIndexes asks node id for its FSM applied index and raft last index.
func (n *Node) PeerIndexes(ctx context.Context, id string) (applied, last uint64, err error) {
	if id == n.id {
		return n.fsm.AppliedIndex(), n.raft.LastIndex(), nil
	}
	body, err := n.forward(ctx, id, PathStatus, nil)
	if err != nil {
		return 0, 0, err
	}
	var rep internalReply
	if err := fsm.DecodeValue(body, &rep); err != nil {
		return 0, 0, err
	}
	return rep.Index, rep.Last, nil
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Candidate:
		return "candidate"
	case raft.Shutdown:
		return "shutdown"
	}
	return "follower"
}

// Backup writes a consistent copy of the whole state (a bbolt file) to w, after a
// linearizable read barrier so that it holds every write acknowledged before the call.
func (n *Node) Backup(w io.Writer) error {
	if err := n.ConsistentRead(context.Background()); err != nil {
		return err
	}
	st, err := n.fsm.OpenState()
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.WriteTo(w)
	return err
}
