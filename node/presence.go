package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/imnode/imnode/fsm"
)

// Presence: which users have a WebSocket connection open, on any node.
//
// A node knows only its own connections, and connects are not written through raft (a
// connect or disconnect per client is far more traffic than messages, and worthless after
// a restart). The node asked for presence asks every other server of the raft
// configuration, in parallel with a short timeout, for its connections of the uids, over
// the authenticated internal route PathPresence, and merges the answers with its own. A
// node that does not answer in time is listed as unreachable instead of failing the call:
// a node that is down has no connections, and one cut off from the cluster has told its
// clients to go elsewhere, so the answer is what every reachable node holds at the call.

// PathPresence is the internal route a node answers with its own connections of some
// uids (msgpack []string in, msgpack []Conn out).
const PathPresence = "/internal/presence"

// PresenceTimeout bounds how long OnlineStatus waits for the other nodes.
const PresenceTimeout = 300 * time.Millisecond

// Conn is one open WebSocket connection of a user on a node.
type Conn struct {
	UID      string
	Platform int
	ConnID   uint64
	NodeID   string
	// Since is when the connection opened (Unix nanoseconds, that node's clock).
	Since int64
}

// PresenceFunc returns this node's open connections of uids (NodeID may be left empty).
type PresenceFunc func(uids []string) []Conn

// Presence is the cluster-wide answer of OnlineStatus.
type Presence struct {
	// Conns are the connections of the uids asked for, on every node that answered,
	// sorted by uid, node and connection.
	Conns []Conn
	// Unreachable lists, sorted, the servers of the raft configuration that did not
	// answer within PresenceTimeout: their connections, if any, are not in Conns.
	Unreachable []string
}

type presenceHolder struct{ f PresenceFunc }

// SetPresence connects the node's WebSocket gateway: f lists its connections.
func (n *Node) SetPresence(f PresenceFunc) { n.presence.Store(&presenceHolder{f}) }

// localConns is this node's connections of uids.
func (n *Node) localConns(uids []string) []Conn {
	h := n.presence.Load()
	if h == nil || h.f == nil {
		return nil
	}
	conns := h.f(uids)
	for i := range conns {
		conns[i].NodeID = n.id
	}
	return conns
}

// servePresence answers PathPresence.
func (n *Node) servePresence(body []byte) (int, []byte) {
	var uids []string
	if err := fsm.DecodeValue(body, &uids); err != nil || len(uids) > maxPresenceUIDs {
		return 400, []byte("a presence call is msgpack []string of at most 1000 uids")
	}
	out, err := fsm.EncodeValue(n.localConns(uids))
	if err != nil {
		return 500, []byte(err.Error())
	}
	return 200, out
}

// maxPresenceUIDs bounds the uids of one internal presence call.
const maxPresenceUIDs = 1000

// OnlineStatus returns the connections of uids on every server of the raft configuration
// that answers within PresenceTimeout (or ctx), this node's own included.
func (n *Node) OnlineStatus(ctx context.Context, uids []string) (Presence, error) {
	body, err := fsm.EncodeValue(uids)
	if err != nil {
		return Presence{}, err
	}
	servers, err := n.Servers()
	if err != nil {
		return Presence{}, err
	}
	gone := map[string]bool{}
	for _, m := range n.memberList() {
		if m.Gossip == "dead" || m.Gossip == "left" {
			gone[m.NodeID] = true
		}
	}
	ctx, cancel := context.WithTimeout(ctx, PresenceTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		out = Presence{Conns: n.localConns(uids)}
		wg  sync.WaitGroup
	)
	for _, s := range servers {
		id := string(s.ID)
		if id == n.id {
			continue
		}
		if gone[id] {
			out.Unreachable = append(out.Unreachable, id)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns, err := n.peerConns(ctx, id, body)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				n.log.Debug("presence: node did not answer", "node", id, "err", err)
				out.Unreachable = append(out.Unreachable, id)
				return
			}
			out.Conns = append(out.Conns, conns...)
		}()
	}
	wg.Wait()
	sort.Strings(out.Unreachable)
	sort.Slice(out.Conns, func(i, j int) bool {
		a, b := out.Conns[i], out.Conns[j]
		if a.UID != b.UID {
			return a.UID < b.UID
		}
		if a.NodeID != b.NodeID {
			return a.NodeID < b.NodeID
		}
		return a.ConnID < b.ConnID
	})
	return out, nil
}

// peerConns asks node id for its connections of the uids encoded in body. The node ID of
// each connection is the one asked, whatever the answer says.
func (n *Node) peerConns(ctx context.Context, id string, body []byte) ([]Conn, error) {
	rep, err := n.forward(ctx, id, PathPresence, body)
	if err != nil {
		return nil, err
	}
	var conns []Conn
	if err := fsm.DecodeValue(rep, &conns); err != nil {
		return nil, err
	}
	for i := range conns {
		conns[i].NodeID = id
	}
	return conns, nil
}
