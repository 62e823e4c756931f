package node

import (
	"sync/atomic"
	"time"
)

// A leader confirms it still leads before it serves a read (raft.VerifyLeader): every
// follower's replication goroutine votes when an AppendEntries reply comes back. hashicorp/raft
// counts any successful reply, including one to a request sent before the verification
// began. A leader that was stopped for a while (SIGSTOP, a stalled VM) finds such replies
// waiting in its sockets when it resumes: they were true when they were written, but
// meanwhile the followers may have elected a new leader and committed writes, and the old
// leader would confirm itself with them and serve a stale read. jepsen saw exactly that
// (a register read just after SIGCONT of a paused leader).
//
// pauseGuard notices such stops: a goroutine ticks every pauseTick, and a tick that comes
// much later than due means the process did not run in between. For a while after a stop
// (and while the ticker itself is late), leaderReadIndex does not trust VerifyLeader and
// confirms leadership with a barrier entry instead: committing a new entry needs replies to
// requests that carry it, which can only have been sent after the stop, and followers that
// moved to a newer term refuse it. A long GC pause or a starved machine trips the guard too;
// reads are then slower for a moment, never wrong.
const (
	pauseTick   = 10 * time.Millisecond
	pauseGap    = 150 * time.Millisecond // a tick this late means the process stopped
	pauseWindow = 2 * time.Second        // barrier reads for this long after a stop
)

type pauseGuard struct {
	base time.Time // the monotonic clock's origin for the fields below
	// last is the time of the latest tick, suspectUntil the end of the barrier-read window
	// (nanoseconds since base).
	last         atomic.Int64
	suspectUntil atomic.Int64
}

func newPauseGuard() *pauseGuard {
	return &pauseGuard{base: time.Now()}
}

func (g *pauseGuard) now() int64 { return int64(time.Since(g.base)) }

// tick records that the process runs at now; a gap since the previous tick opens the window.
func (g *pauseGuard) tick(now int64) {
	if now-g.last.Load() > int64(pauseGap) {
		g.suspectUntil.Store(now + int64(pauseWindow))
	}
	g.last.Store(now)
}

// suspect reports whether the process may have stopped recently: within the window after a
// late tick, or now, with the ticker late (it may not have run since a resume yet).
func (g *pauseGuard) suspect(now int64) bool {
	return now-g.last.Load() > int64(pauseGap) || now < g.suspectUntil.Load()
}

// run ticks until stop is closed.
func (g *pauseGuard) run(stop <-chan struct{}) {
	t := time.NewTicker(pauseTick)
	defer t.Stop()
	for {
		g.tick(g.now())
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
