package node

import (
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imnode/imnode/fsm"
)

// Metrics are the node's Prometheus collectors.
type Metrics struct {
	forwarded     prometheus.Counter
	forwardOver   prometheus.Counter
	barrierReads  prometheus.Counter
	forwardBatch  prometheus.Histogram
	commitLatency prometheus.Histogram
	entryCommands prometheus.Histogram
	batchSize     prometheus.Histogram
	applySeconds  prometheus.Histogram
	commitSize    prometheus.Histogram
	commitSeconds prometheus.Histogram
	snapshotSecs  prometheus.Histogram
}

// histogram is a histogram with exponential buckets: count buckets from start, doubling.
func histogram(name, help string, start float64, count int) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: name, Help: help, Buckets: prometheus.ExponentialBuckets(start, 2, count),
	})
}

func newMetrics() *Metrics {
	return &Metrics{
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imnode_forwarded_writes_total", Help: "Writes this node forwarded to the leader.",
		}),
		forwardOver: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imnode_forward_overflow_calls_total",
			Help: "Forwarded batch calls started beyond the usual 4 because a write had waited 5 ms for one of them.",
		}),
		barrierReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imnode_barrier_reads_total",
			Help: "Read confirmations this leader made with a barrier entry because the process had stopped recently (see node/pauseguard.go).",
		}),
		forwardBatch: histogram("imnode_forward_batch_writes",
			"Writes per forwarded batch call to the leader.", 1, 9),
		commitLatency: histogram("imnode_raft_commit_seconds",
			"Time from raft.Apply to the FSM's result on the leader, per entry.", 0.0005, 14),
		entryCommands: histogram("imnode_raft_entry_commands",
			"Commands per raft entry the leader proposed (more than one are packed in an fsm.CmdBatch).", 1, 10),
		batchSize: histogram("imnode_fsm_apply_batch_entries",
			"Entries per batch raft hands the FSM.", 1, 11),
		applySeconds: histogram("imnode_fsm_apply_batch_seconds",
			"Time to apply one FSM batch (with its commit when group commit is off).", 0.0001, 16),
		commitSize: histogram("imnode_fsm_commit_entries",
			"Entries per fsm.db commit (one bbolt transaction and fsync each), a packed entry counted as its commands.", 1, 13),
		commitSeconds: histogram("imnode_fsm_commit_seconds",
			"Time to commit and fsync one fsm.db transaction.", 0.0001, 16),
		snapshotSecs: histogram("imnode_snapshot_persist_seconds",
			"Time to write one raft snapshot of fsm.db.", 0.001, 16),
	}
}

// observedFSM measures the FSM for /metrics without the fsm package knowing about it.
type observedFSM struct {
	*fsm.FSM
	m *Metrics
}

func (o *observedFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	start := time.Now()
	out := o.FSM.ApplyBatch(logs)
	o.m.applySeconds.Observe(time.Since(start).Seconds())
	o.m.batchSize.Observe(float64(len(logs)))
	return out
}

func (o *observedFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := o.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return &observedSnapshot{FSMSnapshot: s, m: o.m}, nil
}

type observedSnapshot struct {
	raft.FSMSnapshot
	m *Metrics
}

func (s *observedSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	err := s.FSMSnapshot.Persist(sink)
	s.m.snapshotSecs.Observe(time.Since(start).Seconds())
	return err
}

// Register adds the node's collectors to reg: its own counters and gauges read from raft
// at scrape time.
func (n *Node) Register(reg prometheus.Registerer) {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(
		n.metrics.forwarded, n.metrics.forwardOver, n.metrics.barrierReads, n.metrics.forwardBatch, n.metrics.commitLatency, n.metrics.entryCommands, n.metrics.batchSize, n.metrics.applySeconds,
		n.metrics.commitSize, n.metrics.commitSeconds, n.metrics.snapshotSecs,
		gauge("imnode_fsm_db_bytes", "Size of fsm.db on disk.", func() float64 {
			fi, err := os.Stat(filepath.Join(n.cfg.DataDir, "fsm.db"))
			if err != nil {
				return 0
			}
			return float64(fi.Size())
		}),
		gauge("imnode_fsm_free_pages", "Free pages in fsm.db, which later writes reuse (deletes and pruning free them).", func() float64 {
			pages, _ := n.fsm.FreePages()
			return float64(pages)
		}),
		gauge("imnode_fsm_freelist_bytes", "Size of fsm.db's freelist; commits store it while it is at most 64 KiB, and a clean stop stores it.", func() float64 {
			_, b := n.fsm.FreePages()
			return float64(b)
		}),
		gauge("imnode_raft_db_bytes", "Size of raft.db (log and stable store) on disk.", func() float64 {
			fi, err := os.Stat(filepath.Join(n.cfg.DataDir, "raft.db"))
			if err != nil {
				return 0
			}
			return float64(fi.Size())
		}),
		gauge("imnode_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 {
			return float64(n.raft.State())
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "imnode_raft_connections_refused_total",
			Help: "Connections to the raft port closed because they failed the peer handshake (wrong cluster key or certificate, or not imnode)."},
			func() float64 {
				if n.stream == nil {
					return 0
				}
				return float64(n.stream.refused.Load())
			}),
		gauge("imnode_raft_term", "Current raft term.", func() float64 { return float64(n.raft.CurrentTerm()) }),
		gauge("imnode_raft_commit_index", "Raft commit index.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("imnode_raft_last_index", "Last raft log index.", func() float64 { return float64(n.raft.LastIndex()) }),
		gauge("imnode_fsm_applied_index", "Last index applied to fsm.db.", func() float64 { return float64(n.fsm.AppliedIndex()) }),
		gauge("imnode_raft_is_leader", "1 when this node leads.", func() float64 {
			if n.raft.State() == raft.Leader {
				return 1
			}
			return 0
		}),
	)
}
