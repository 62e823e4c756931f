package node

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the node's Prometheus collectors.
type Metrics struct {
	forwarded     prometheus.Counter
	commitLatency prometheus.Histogram
}

func newMetrics() *Metrics {
	return &Metrics{
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imnode_forwarded_writes_total", Help: "Writes this node forwarded to the leader.",
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imnode_raft_commit_seconds", Help: "Time from raft.Apply to the FSM's result on the leader.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
}

// Register adds the node's collectors to reg: its own counters and gauges read from raft
// at scrape time.
func (n *Node) Register(reg prometheus.Registerer) {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(
		n.metrics.forwarded, n.metrics.commitLatency,
		gauge("imnode_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 {
			return float64(n.raft.State())
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
