// Package cluster finds the other imnode servers with memberlist gossip and turns gossip
// membership into raft membership: it bootstraps a new cluster once -bootstrap-expect
// servers are visible, and on the leader it runs the reconcile loop that adds new members
// (non-voter first, voter once it has been seen healthy) and removes members that left.
//
// Each node advertises its ID, raft and HTTP addresses, and whether it already belongs to
// a cluster, in its gossip metadata. A node with no raft state that sees a member already in
// a cluster never bootstraps: it waits for the leader to add it.
package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/node"
)

// Meta is the gossip metadata of one member.
type Meta struct {
	NodeID    string `json:"id"`
	RaftAddr  string `json:"raft"`
	HTTPAddr  string `json:"http"`
	InCluster bool   `json:"in"`
	// Leaving is set by a node on its way out, so the leader does not add it back between
	// its removal from raft and its gossip leave.
	Leaving bool `json:"leaving,omitempty"`
	// Removed is set by a running node the leader removed with remove_node: no leader adds it
	// back until it restarts (a restart clears it, and then it rejoins by itself).
	Removed bool `json:"removed,omitempty"`
}

// Cluster is this node's gossip membership.
type Cluster struct {
	cfg  config.Config
	n    *node.Node
	log  *slog.Logger
	ml   *memberlist.Memberlist
	meta atomic.Pointer[Meta]

	mu       sync.Mutex
	peers    map[string]peer      // gossip's view, copied in memberlist's callbacks
	deadAt   map[string]time.Time // members gossip reports dead, since when
	seenAsNV map[string]int       // reconcile rounds a non-voter has been seen alive
	verdicts map[string]verdict   // checks of members' credentials (verify.go)

	// joinTried is closed after the first attempt to join the -join addresses: a new node
	// does not bootstrap before it has seen whether they already form a cluster.
	joinTried chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
}

// New starts memberlist on cfg.GossipAddr. Call Start to join and run the loops.
func New(cfg config.Config, n *node.Node, logger *slog.Logger) (*Cluster, error) {
	c := &Cluster{cfg: cfg, n: n, log: logger, deadAt: map[string]time.Time{}, peers: map[string]peer{},
		seenAsNV: map[string]int{}, verdicts: map[string]verdict{}, stop: make(chan struct{}), joinTried: make(chan struct{})}
	c.meta.Store(&Meta{NodeID: cfg.NodeID, RaftAddr: cfg.RaftAddr, HTTPAddr: cfg.HTTPAddr, InCluster: n.HasState()})

	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.GossipAddr, err)
	}
	port, _ := strconv.Atoi(portStr)
	mc := memberlist.DefaultLANConfig()
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = cfg.NodeID
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	mc.Delegate = &delegate{c: c}
	mc.Events = &events{c: c}
	mc.Logger = log.New(io.Discard, "", 0)
	if cfg.Log.Level == "debug" {
		mc.Logger = slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	}
	if cfg.GossipKey != "" {
		// The keyring encrypts with gossipKey and accepts gossipKeys too (a rotation).
		primary, err := config.DecodeGossipKey(cfg.GossipKey)
		if err != nil {
			return nil, fmt.Errorf("gossipKey: %w", err)
		}
		var others [][]byte
		for _, k := range cfg.GossipKeys {
			b, err := config.DecodeGossipKey(k)
			if err != nil {
				return nil, fmt.Errorf("gossipKeys: %w", err)
			}
			others = append(others, b)
		}
		kr, err := memberlist.NewKeyring(others, primary)
		if err != nil {
			return nil, fmt.Errorf("gossip keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: mc.Logger})
	if err != nil {
		return nil, fmt.Errorf("gossip listen %s: %w", cfg.GossipAddr, err)
	}
	mc.Transport = &boundTransport{NetTransport: nt, dial: node.LocalDialer(host)}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	c.ml = ml
	n.SetMembers(c)
	n.SetOnRemoved(c.markRemoved)
	return c, nil
}

// boundTransport makes memberlist's TCP connections leave from the node's own IP, like
// raft's (see node.LocalDialer).
type boundTransport struct {
	*memberlist.NetTransport
	dial func(addr string) (net.Conn, error)
}

func (t *boundTransport) DialTimeout(addr string, _ time.Duration) (net.Conn, error) {
	return t.dial(addr)
}

func (t *boundTransport) DialAddressTimeout(a memberlist.Address, _ time.Duration) (net.Conn, error) {
	return t.dial(a.Addr)
}

// Start joins the -join addresses (retrying in the background until one answers) and starts
// the bootstrap and reconcile loops.
func (c *Cluster) Start() {
	c.wg.Add(2)
	go c.joinLoop()
	go c.mainLoop()
}

func (c *Cluster) joinLoop() {
	defer c.wg.Done()
	if len(c.cfg.Join) == 0 {
		close(c.joinTried)
		return
	}
	for attempt := 0; ; attempt++ {
		n, err := c.ml.Join(c.cfg.Join)
		if attempt == 0 {
			close(c.joinTried)
		}
		if n > 0 {
			c.log.Info("joined gossip", "contacted", n)
			return
		}
		if attempt%10 == 0 {
			c.log.Warn("join: no member answered yet, retrying", "join", c.cfg.Join, "err", err)
		}
		select {
		case <-c.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// peer is one member as the event callbacks last saw it. memberlist mutates the *Node
// values that Members() returns without a lock the caller can take, so reading them races;
// the callbacks run under memberlist's lock, so copying there is safe.
type peer struct {
	meta   Meta
	gossip string // host:port
	alive  bool
}

// alivePeers returns the members gossip sees alive, this node included.
func (c *Cluster) alivePeers() []peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []peer
	for _, p := range c.peers {
		if p.alive {
			out = append(out, p)
		}
	}
	return out
}

// Members implements node.MemberSource: every member gossip has seen, alive or not.
func (c *Cluster) Members() []node.MemberInfo {
	c.mu.Lock()
	out := make([]node.MemberInfo, 0, len(c.peers))
	for _, p := range c.peers {
		state := "alive"
		switch {
		case p.alive:
		case p.meta.Leaving || p.meta.Removed:
			state = "left"
		default:
			state = "dead"
		}
		out = append(out, node.MemberInfo{NodeID: p.meta.NodeID, HTTPAddr: p.meta.HTTPAddr, RaftAddr: p.meta.RaftAddr,
			GossipAddr: p.gossip, Gossip: state, Reason: c.reasonLocked(p.meta.NodeID, p.meta.RaftAddr)})
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

func decodeMeta(b []byte) (Meta, bool) {
	var m Meta
	if len(b) == 0 || json.Unmarshal(b, &m) != nil || m.NodeID == "" {
		return m, false
	}
	return m, true
}

// Register adds the gossip gauges to reg.
func (c *Cluster) Register(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imnode_gossip_members", Help: "Members gossip sees alive, this node included.",
	}, func() float64 { return float64(c.ml.NumMembers()) }))
}

// Leave announces a graceful departure to the other members and waits for it to spread.
func (c *Cluster) Leave(timeout time.Duration) error { return c.ml.Leave(timeout) }

// Shutdown stops the loops and memberlist.
func (c *Cluster) Shutdown() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
	return c.ml.Shutdown()
}

// MarkLeaving tells the other members this node is leaving (see Meta.Leaving).
func (c *Cluster) MarkLeaving() { c.updateMeta(func(m *Meta) { m.Leaving = true }) }

// markRemoved tells the other members the leader removed this node (see Meta.Removed).
func (c *Cluster) markRemoved() {
	c.log.Warn("the leader removed this node from the raft configuration; it will not rejoin until restarted")
	c.updateMeta(func(m *Meta) { m.Removed = true })
}

func (c *Cluster) updateMeta(change func(*Meta)) {
	m := *c.meta.Load()
	change(&m)
	c.meta.Store(&m)
	if err := c.ml.UpdateNode(2 * time.Second); err != nil {
		c.log.Warn("gossip metadata update", "err", err)
	}
}

func (c *Cluster) setInCluster() {
	old := c.meta.Load()
	if old.InCluster {
		return
	}
	m := *old
	m.InCluster = true
	c.meta.Store(&m)
	if err := c.ml.UpdateNode(2 * time.Second); err != nil {
		c.log.Warn("gossip metadata update", "err", err)
	}
}

// delegate serves this node's metadata to gossip.
type delegate struct{ c *Cluster }

func (d *delegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(d.c.meta.Load())
	if len(b) > limit {
		return nil
	}
	return b
}
func (d *delegate) NotifyMsg([]byte)                {}
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *delegate) LocalState(bool) []byte          { return nil }
func (d *delegate) MergeRemoteState([]byte, bool)   {}

// events records when members stop answering, for the dead-node timeout. memberlist calls
// NotifyLeave for graceful leaves and failures alike (without telling them apart), so a
// graceful leave is handled by the leaving node itself: it asks the leader to remove it
// (node.Leave) before leaving gossip.
type events struct{ c *Cluster }

func (e *events) NotifyJoin(n *memberlist.Node) {
	e.c.mu.Lock()
	delete(e.c.deadAt, n.Name)
	e.c.setPeer(n, true)
	e.c.mu.Unlock()
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	e.c.mu.Lock()
	e.c.deadAt[n.Name] = time.Now()
	// Checked again when it comes back: it may have restarted with other credentials.
	delete(e.c.verdicts, n.Name)
	e.c.setPeer(n, false)
	e.c.mu.Unlock()
}

func (e *events) NotifyUpdate(n *memberlist.Node) {
	e.c.mu.Lock()
	e.c.setPeer(n, true)
	e.c.mu.Unlock()
}

// setPeer copies n (called with c.mu held, from memberlist's callbacks).
func (c *Cluster) setPeer(n *memberlist.Node, alive bool) {
	meta, ok := decodeMeta(n.Meta)
	if !ok {
		if old, had := c.peers[n.Name]; had {
			old.alive = alive
			c.peers[n.Name] = old
		}
		return
	}
	c.peers[n.Name] = peer{meta: meta, alive: alive, gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))}
}
