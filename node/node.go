// Package node runs raft for one imnode server: its log and stable store (raft-boltdb/v2),
// its snapshot store and transport; it proposes commands and returns the FSM's results,
// forwards writes from followers to the leader, serves linearizable reads on every node and
// changes raft membership. See DESIGN.md beside this file for the why.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/internal/pki"
)

// ForwardFunc sends an internal call to the node with ID leaderID and returns the reply
// body. An error wrapping ErrNotSent proves the call never reached the leader.
type ForwardFunc func(ctx context.Context, leaderID, path string, body []byte) ([]byte, error)

// ErrNotSent marks a forwarding failure that happened before the request left this node.
var ErrNotSent = errors.New("request not sent")

// Options are the dependencies of a Node.
type Options struct {
	Config config.Config
	FSM    *fsm.FSM
	Logger *slog.Logger
	// Transport replaces the TCP transport (tests use raft's in-memory transport).
	Transport raft.Transport
	// Forward replaces HTTP forwarding to the leader (tests call the leader directly).
	Forward ForwardFunc
	// InmemStores keeps the raft log and snapshots in memory (tests only).
	InmemStores bool
	// TLS, if set, is the node's certificate material: raft connections are mutual TLS and
	// forwarding verifies the peer's certificate.
	TLS *pki.Store
	// Prove replaces the check that a member holds the cluster's credentials (tests on the
	// in-memory transport; see ProveMember).
	Prove func(id, raftAddr string) error
}

// Node is one raft server with its FSM.
type Node struct {
	cfg    config.Config
	id     string
	fsm    *fsm.FSM
	log    *slog.Logger
	raft   *raft.Raft
	trans  raft.Transport
	stream *authStream // nil with an injected transport
	prove  func(id, raftAddr string) error
	tls    *pki.Store
	closer []io.Closer
	logs   raft.LogStore
	states *stateSnapshots

	hasState atomic.Bool
	forward  ForwardFunc
	batcher  *forwardBatcher
	packer   *packer
	members  atomic.Pointer[memberHolder]

	leaderReads   coalescer
	followerReads coalescer
	readyTerm     atomic.Uint64
	pause         *pauseGuard

	presence  atomic.Pointer[presenceHolder]
	onRemoved atomic.Pointer[func()]
	removedMu sync.Mutex
	removed   map[string]time.Time // IDs this leader removed recently (see RecentlyRemoved)

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
	metrics  *Metrics
}

type memberHolder struct{ src MemberSource }

// New opens the raft stores under cfg.DataDir and starts raft. It does not bootstrap: see
// Bootstrap and HasState.
func New(o Options) (*Node, error) {
	cfg := o.Config
	n := &Node{cfg: cfg, id: cfg.NodeID, fsm: o.FSM, log: o.Logger, forward: o.Forward, stop: make(chan struct{}),
		removed: map[string]time.Time{}, prove: o.Prove, tls: o.TLS}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.metrics = newMetrics()
	n.packer = newPacker(n)
	n.pause = newPauseGuard()
	n.leaderReads.fetch = n.leaderReadIndex
	n.followerReads.fetch = n.forwardReadIndex

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.Raft.HeartbeatTimeout.D()
	rc.ElectionTimeout = cfg.Raft.ElectionTimeout.D()
	rc.LeaderLeaseTimeout = cfg.Raft.LeaderLeaseTimeout.D()
	rc.CommitTimeout = 5 * time.Millisecond
	rc.MaxAppendEntries = cfg.Raft.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = cfg.Raft.SnapshotThreshold
	rc.SnapshotInterval = cfg.Raft.SnapshotInterval.D()
	rc.TrailingLogs = cfg.Raft.TrailingLogs
	// The FSM keeps its own durable file and skips entries it already applied, so raft
	// need not reload the last snapshot at start (restart time does not grow with history).
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = hclog.New(&hclog.LoggerOptions{
		Name: "raft", Level: hclog.LevelFromString(raftLogLevel(cfg.Log.Level)),
		Output: os.Stderr, JSONFormat: cfg.Log.Format == "json",
	})

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
		pins   *logPins
	)
	if o.InmemStores {
		ms := raft.NewInmemStore()
		logs, stable, snaps = ms, ms, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		pins = &logPins{}
		// After each snapshot the log is truncated, so raft.db is mostly free pages; without
		// NoFreelistSync every append would rewrite that freelist (Consul offers the same
		// switch for the same reason). The map freelist allocates in O(1).
		raftPath := filepath.Join(cfg.DataDir, "raft.db")
		if err := fsm.CheckBoltFile(raftPath); err != nil {
			return nil, err
		}
		bs, err := raftboltdb.New(raftboltdb.Options{Path: raftPath,
			BoltOptions: &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}})
		if err != nil {
			return nil, fmt.Errorf("open raft.db: %w", err)
		}
		n.closer = append(n.closer, bs)
		cache, err := raft.NewLogCache(1024, chunkedDeletes{LogStore: bs, pins: pins})
		if err != nil {
			return nil, err
		}
		logs, stable = cache, bs
		fss, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.Raft.SnapshotsRetained, rc.Logger.Named("snapshots"))
		if err != nil {
			return nil, fmt.Errorf("snapshot store: %w", err)
		}
		snaps = fss
	}
	n.logs = logs
	states := &stateSnapshots{SnapshotStore: snaps, fsm: n.fsm, pins: pins, sendRate: int64(cfg.Raft.StateSendRate) << 20}
	if !o.InmemStores {
		states.dir = cfg.DataDir
	}
	snaps, n.states = states, states
	if err := states.catchUp(); err != nil {
		n.closeStores()
		return nil, err
	}

	n.trans = o.Transport
	if n.trans == nil {
		stream, err := newAuthStream(cfg.RaftAddr, newPeerAuth(cfg.ClusterKey, cfg.NodeID, o.TLS), n.log)
		if err != nil {
			n.closeStores()
			return nil, err
		}
		n.stream = stream
		n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: stream, MaxPool: 5, Timeout: 10 * time.Second, Logger: rc.Logger.Named("transport"),
		})
	}
	hasState, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		n.closeStores()
		return nil, err
	}
	n.hasState.Store(hasState)
	r, err := raft.NewRaft(rc, &observedFSM{FSM: n.fsm, m: n.metrics}, storeSignal{LogStore: logs, p: n.packer}, stable, snaps, n.trans)
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.fsm.SetCommitObserver(func(entries int, d time.Duration) {
		n.metrics.commitSize.Observe(float64(entries))
		n.metrics.commitSeconds.Observe(d.Seconds())
	})
	n.batcher = &forwardBatcher{n: n}
	if n.forward == nil {
		n.forward = newHTTPForwarder(n).forward
	}
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.pause.run(n.stop) }()
	go n.leaderDuties()
	go n.retentionDuties()
	return n, nil
}

// ProveMember checks that member id, at raftAddr, holds the cluster's credentials: its raft
// port answers the cluster-key handshake (after mutual TLS when configured) as node id. The
// leader adds a gossip member to the raft configuration only once this succeeds, so a
// stranger that joins gossip never receives a raft RPC. With an injected in-memory
// transport (tests) every member is in-process and this checks nothing unless
// Options.Prove is set.
func (n *Node) ProveMember(id, raftAddr string) error {
	switch {
	case n.prove != nil:
		return n.prove(id, raftAddr)
	case n.stream == nil:
		return nil
	}
	return n.stream.prove(raftAddr, id, 2*time.Second)
}

func raftLogLevel(l string) string {
	switch l {
	case "debug", "error":
		return l
	}
	return "warn"
}

func (n *Node) closeStores() {
	for _, c := range n.closer {
		_ = c.Close()
	}
}

// SetMembers connects the gossip layer, used to find other nodes' HTTP addresses.
func (n *Node) SetMembers(src MemberSource) { n.members.Store(&memberHolder{src}) }

func (n *Node) memberList() []MemberInfo {
	if h := n.members.Load(); h != nil && h.src != nil {
		return h.src.Members()
	}
	return nil
}

// ID is this node's ID.
func (n *Node) ID() string { return n.id }

// FSM is this node's state machine, for local reads.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Raft exposes the raft instance to the cluster layer and tests.
func (n *Node) Raft() *raft.Raft { return n.raft }

// HasState reports whether this node has raft state: it had some when it started, it
// bootstrapped, or a leader has replicated to it since. Such a node never bootstraps.
func (n *Node) HasState() bool { return n.hasState.Load() || n.raft.LastIndex() > 0 }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's ID, or "" when none is known.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// Bootstrap starts a new cluster whose voters are servers (id -> raft address). Every node
// of a new cluster may call it with the same set.
func (n *Node) Bootstrap(servers map[string]string) error {
	var conf raft.Configuration
	for id, addr := range servers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	err := n.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	if err == nil {
		n.hasState.Store(true)
	}
	return err
}

// Shutdown stops raft and closes the stores. The FSM is the caller's to close.
func (n *Node) Shutdown() error {
	var err error
	n.stopOnce.Do(func() {
		close(n.stop)
		n.wg.Wait()
		err = n.raft.Shutdown().Error()
		if c, ok := n.trans.(io.Closer); ok {
			_ = c.Close()
		}
		n.closeStores()
	})
	return err
}

// leaderDuties runs periodic work that only the leader does: proposing the pruning of old
// idempotency records (through the log, so every node prunes the same records).
func (n *Node) leaderDuties() {
	defer n.wg.Done()
	n.everyAsLeader(idempotencyPruneInterval, n.pruneIdempotency)
}

// idempotencyPruneInterval is how often the leader proposes pruning idempotency records.
// Once a minute, at most fsm.MaxPrunePerCommand (50,000) a time, forgot at most 833 records a
// second: a cluster writing faster than that for longer than idempotencyRetention never
// caught up, and its records, and each node's in-memory index of them, grew without bound.
// Every 10 s, each prune is also a sixth of the size, and a smaller stall of every node's
// apply loop (the oldest records are the coldest pages of fsm.db).
const idempotencyPruneInterval = 10 * time.Second

// everyAsLeader calls duty every interval while this node leads, until the node stops.
func (n *Node) everyAsLeader(interval time.Duration, duty func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if n.IsLeader() {
			duty()
		}
	}
}

// pruneIdempotency proposes forgetting the idempotency records older than the retention.
func (n *Node) pruneIdempotency() {
	n.pruneIdempotencyBefore(time.Now().Add(-n.cfg.IdempotencyRetention.D()).UnixNano(), 0)
}

// pruneIdempotencyBefore proposes PruneIdempotency{before, limit} (see pruneRounds) and
// returns how many records went. The leader's duty passes limit 0 (fsm.MaxPrunePerCommand);
// tests pass a small one.
func (n *Node) pruneIdempotencyBefore(before int64, limit int) int {
	c := fsm.PruneIdempotency{Before: before, Limit: limit}
	cmd, err := fsm.Encode(fsm.CmdPruneIdempotency, nil, c)
	if err != nil {
		n.log.Error("prune idempotency records: encode", "err", err)
		return 0
	}
	return n.pruneRounds("prune idempotency records", cmd, c.MaxRecords(), nil)
}

// hostOf returns the host part of addr, or addr.
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
