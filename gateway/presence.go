package gateway

import (
	"sort"
	"time"
)

// LocalConn is one open WebSocket connection of this node, as presence shows it.
type LocalConn struct {
	UID string
	// Platform is the platform of the token the connection authenticated with.
	Platform int
	// ConnID numbers the connection on this node (unique until the process restarts).
	ConnID uint64
	// Since is when the connection registered (this node's clock).
	Since time.Time
}

// Online returns the open connections of uids on this node, in the order of uids and, for
// one uid, of connection. A uid with no connection has no entry. It reads the registry as
// it is at the call: a connection that closes is gone from it at once.
func (g *Gateway) Online(uids []string) []LocalConn {
	var out []LocalConn
	g.mu.RLock()
	defer g.mu.RUnlock()
	seen := make(map[string]bool, len(uids))
	for _, uid := range uids {
		if seen[uid] {
			continue
		}
		seen[uid] = true
		first := len(out)
		for c := range g.byUID[uid] {
			out = append(out, LocalConn{UID: uid, Platform: c.platform, ConnID: c.id, Since: c.since})
		}
		mine := out[first:]
		sort.Slice(mine, func(i, j int) bool { return mine[i].ConnID < mine[j].ConnID })
	}
	return out
}
