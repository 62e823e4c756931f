package jepsen

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault names accepted in Config.Faults.
const (
	FaultKill            = "kill"             // kill -9 a random node, restart it at heal
	FaultKillLeader      = "kill-leader"      // kill -9 the leader, restart it at heal
	FaultPauseLeader     = "pause-leader"     // SIGSTOP the leader, SIGCONT at heal
	FaultPartitionLeader = "partition-leader" // isolate the leader from every other node
	FaultPartitionHalf   = "partition-half"   // a random majority / minority split
	FaultPartitionBridge = "partition-bridge" // two halves that only one node connects
	FaultRestartAll      = "restart-all"      // kill -9 every node, start them all again
	FaultMembership      = "membership"       // remove a follower, add a new node
)

// AllFaults lists every fault, in the order the README describes them.
var AllFaults = []string{FaultKill, FaultKillLeader, FaultPauseLeader, FaultPartitionLeader,
	FaultPartitionHalf, FaultPartitionBridge, FaultRestartAll, FaultMembership}

func isProcessFault(f string) bool {
	return f == FaultKill || f == FaultKillLeader || f == FaultPauseLeader
}

func isNetFault(f string) bool { return strings.HasPrefix(f, "partition-") }

// Event is one fault of the timeline: when it started and was healed (nanoseconds since
// the run started), what exactly it did and how it was healed.
type Event struct {
	Fault  string `json:"fault"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Detail string `json:"detail"`
	Heal   string `json:"heal,omitempty"`
	// Joined is set on a membership fault whose new node became a voter.
	Joined bool `json:"joined,omitempty"`
}

// Nemesis injects faults from a seeded schedule.
type Nemesis struct {
	c      *Cluster
	net    *Net
	h      *History
	rng    *rand.Rand
	faults []string
	// hold bounds how long a fault lasts; quiet how long the cluster runs unharmed between
	// faults.
	holdMin, holdMax, quietMin, quietMax time.Duration
	logf                                 func(string, ...interface{})

	mu       sync.Mutex
	timeline []Event
}

// active is a fault in force and how to heal it.
type active struct {
	ev   Event
	heal func() string
}

// Run injects faults until ctx ends, in rounds that take every fault once in a random
// order, one at a time or two combined (a process fault with a partition), each healed
// before the next quiet period. It heals whatever is in force
// when ctx ends.
func (nm *Nemesis) Run(ctx context.Context) {
	if len(nm.faults) == 0 {
		return
	}
	var round []string
	for i := 0; i < 10000 && ctx.Err() == nil; i++ {
		if !sleepCtx(ctx, nm.span(nm.quietMin, nm.quietMax)) {
			return
		}
		// Rounds of every fault in a random order: a short run covers them all.
		if len(round) == 0 {
			round = append([]string(nil), nm.faults...)
			nm.rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		f := round[0]
		round = round[1:]
		var acts []*active
		if a := nm.inject(f); a != nil {
			acts = append(acts, a)
		}
		// Sometimes combine a process fault with a partition.
		if nm.rng.Intn(4) == 0 && (isProcessFault(f) || isNetFault(f)) {
			var others []string
			for _, g := range nm.faults {
				if (isProcessFault(f) && isNetFault(g)) || (isNetFault(f) && isProcessFault(g)) {
					others = append(others, g)
				}
			}
			if len(others) > 0 {
				if a := nm.inject(others[nm.rng.Intn(len(others))]); a != nil {
					acts = append(acts, a)
				}
			}
		}
		// Faults with nothing to heal (restart-all, membership) end when their action
		// completes; the others are held, then healed in reverse order.
		held := false
		for _, a := range acts {
			held = held || a.heal != nil
		}
		if held {
			sleepCtx(ctx, nm.span(nm.holdMin, nm.holdMax))
		}
		for j := len(acts) - 1; j >= 0; j-- {
			nm.finish(acts[j])
		}
	}
}

func (nm *Nemesis) span(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(nm.rng.Int63n(int64(hi-lo)))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// finish heals a and records it in the timeline.
func (nm *Nemesis) finish(a *active) {
	if a.heal != nil {
		a.ev.Heal = a.heal()
		nm.logf("heal  %-16s %s", a.ev.Fault, a.ev.Heal)
	}
	a.ev.End = nm.h.Now()
	nm.mu.Lock()
	nm.timeline = append(nm.timeline, a.ev)
	nm.mu.Unlock()
}

// Timeline returns the faults injected so far, by start time.
func (nm *Nemesis) Timeline() []Event {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	out := append([]Event(nil), nm.timeline...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// leaderOrRandom returns the leader among the running members, or a random running one
// (and says so) when none is known.
func (nm *Nemesis) leaderOrRandom() (*Node, string) {
	if l := nm.c.Leader(); l != nil {
		return l, l.ID + " (leader)"
	}
	run := nm.c.Running()
	if len(run) == 0 {
		return nil, ""
	}
	n := run[nm.rng.Intn(len(run))]
	return n, n.ID + " (no leader known; chosen at random)"
}

// inject starts fault f and returns it, or nil when it could not be applied (recorded).
func (nm *Nemesis) inject(f string) *active {
	a := &active{ev: Event{Fault: f, Start: nm.h.Now()}}
	switch f {
	case FaultKill, FaultKillLeader:
		var n *Node
		var who string
		if f == FaultKillLeader {
			n, who = nm.leaderOrRandom()
		} else if run := nm.c.Running(); len(run) > 0 {
			n = run[nm.rng.Intn(len(run))]
			who = n.ID
		}
		if n == nil {
			return nm.skip(a, "no running node")
		}
		nm.c.Kill(n)
		a.ev.Detail = "kill -9 " + who
		a.heal = func() string { return nm.restart(n) }
	case FaultPauseLeader:
		n, who := nm.leaderOrRandom()
		if n == nil || !nm.c.Pause(n) {
			return nm.skip(a, "no running node")
		}
		a.ev.Detail = "SIGSTOP " + who
		a.heal = func() string { nm.c.Resume(n); return "SIGCONT " + n.ID }
	case FaultPartitionLeader, FaultPartitionHalf, FaultPartitionBridge:
		detail, err := nm.partition(f)
		if err != nil {
			return nm.skip(a, err.Error())
		}
		a.ev.Detail = detail
		a.heal = func() string {
			if err := nm.net.Heal(); err != nil {
				return "heal failed: " + err.Error()
			}
			return "all links restored"
		}
	case FaultRestartAll:
		ms := nm.c.Members()
		for _, n := range ms {
			nm.c.Kill(n)
		}
		time.Sleep(time.Duration(500+nm.rng.Intn(1500)) * time.Millisecond)
		var started []string
		for _, n := range ms {
			started = append(started, nm.restart(n))
		}
		a.ev.Detail = fmt.Sprintf("kill -9 all %d nodes; %s", len(ms), strings.Join(started, "; "))
	case FaultMembership:
		detail, joined, err := nm.membership()
		if err != nil {
			a.ev.Detail = detail
			return nm.skip(a, err.Error())
		}
		a.ev.Detail, a.ev.Joined = detail, joined
	default:
		return nm.skip(a, "unknown fault")
	}
	nm.logf("fault %-16s %s", f, a.ev.Detail)
	return a
}

// skip records a fault that could not be applied.
func (nm *Nemesis) skip(a *active, why string) *active {
	a.ev.Detail = strings.TrimSpace(a.ev.Detail + " skipped: " + why)
	a.ev.End = a.ev.Start
	nm.logf("fault %-16s %s", a.ev.Fault, a.ev.Detail)
	nm.mu.Lock()
	nm.timeline = append(nm.timeline, a.ev)
	nm.mu.Unlock()
	return nil
}

func (nm *Nemesis) restart(n *Node) string {
	if err := nm.c.Start(n); err != nil {
		return "restart " + n.ID + " failed: " + err.Error()
	}
	return "restart " + n.ID
}

// partition cuts the links of one partition topology among the current members.
func (nm *Nemesis) partition(f string) (string, error) {
	ms := nm.c.Members()
	if len(ms) < 2 {
		return "", fmt.Errorf("fewer than 2 members")
	}
	nm.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	names := func(ns []*Node) string {
		var s []string
		for _, n := range ns {
			s = append(s, n.ID)
		}
		return "{" + strings.Join(s, ",") + "}"
	}
	switch f {
	case FaultPartitionLeader:
		l, who := nm.leaderOrRandom()
		if l == nil {
			return "", fmt.Errorf("no running node")
		}
		var rest []*Node
		for _, n := range ms {
			if n != l {
				rest = append(rest, n)
			}
		}
		return fmt.Sprintf("isolate %s from %s", who, names(rest)), nm.net.Partition([]*Node{l}, rest)
	case FaultPartitionHalf:
		k := len(ms)/2 + 1
		return fmt.Sprintf("majority %s | minority %s", names(ms[:k]), names(ms[k:])), nm.net.Partition(ms[:k], ms[k:])
	default: // bridge: two sides that only the middle node reaches
		if len(ms) < 3 {
			return "", fmt.Errorf("a bridge needs 3 members")
		}
		mid := len(ms) / 2
		left, bridge, right := ms[:mid], ms[mid], ms[mid+1:]
		return fmt.Sprintf("bridge %s - %s - %s", names(left), bridge.ID, names(right)), nm.net.Partition(left, right)
	}
}

// membership removes a running follower (killed first, so gossip cannot bring it back,
// then POST /cluster/remove_node) and adds a new node that joins over gossip. joined
// reports whether the new node became a voter within 30 s.
func (nm *Nemesis) membership() (detail string, joined bool, err error) {
	leader := nm.c.Leader()
	if leader == nil {
		return "", false, fmt.Errorf("no leader known")
	}
	var followers []*Node
	for _, n := range nm.c.Running() {
		if n != leader {
			followers = append(followers, n)
		}
	}
	if len(followers) == 0 {
		return "", false, fmt.Errorf("no running follower")
	}
	victim := followers[nm.rng.Intn(len(followers))]
	nm.c.Remove(victim)
	body := marshalBody(map[string]interface{}{"operationID": opID("rm", nm.rng), "nodeID": victim.ID})
	detail = fmt.Sprintf("kill -9 %s, remove_node %s", victim.ID, victim.ID)
	if r, err := setupWrite(nm.c, "cluster/remove_node", body, time.Now().Add(30*time.Second), 1004); err != nil {
		return detail, false, fmt.Errorf("remove_node %s: %v", victim.ID, err)
	} else if r.ErrCode == 1004 {
		detail += " (already gone: 1004)"
	}
	n := nm.c.addNode()
	if err := nm.c.Start(n); err != nil {
		return detail, false, err
	}
	detail += fmt.Sprintf(", add %s@%s", n.ID, n.IP)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		if l := nm.c.Leader(); l != nil {
			if s, err := nm.c.status(l); err == nil {
				for _, m := range s.Members {
					if m.NodeID == n.ID && (m.Role == "voter" || m.Role == "leader") {
						return detail + fmt.Sprintf(" (voter after %.1fs)", 30-time.Until(deadline).Seconds()), true, nil
					}
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return detail + " (NOT a voter after 30s)", false, nil
}

// HealAll restores every link, resumes every paused node and starts every dead member.
func (nm *Nemesis) HealAll() []string {
	var did []string
	if err := nm.net.Heal(); err != nil {
		did = append(did, "net heal failed: "+err.Error())
	}
	for _, n := range nm.c.Members() {
		switch n.State() {
		case statePaused:
			nm.c.Resume(n)
			did = append(did, "SIGCONT "+n.ID)
		case stateDead:
			did = append(did, nm.restart(n))
		}
	}
	return did
}
