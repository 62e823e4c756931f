package node

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestPauseGuardOpensAWindowAfterALateTick(t *testing.T) {
	ms := func(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }
	g := newPauseGuard()
	for now := 0; now <= 100; now += 10 {
		g.tick(ms(now))
	}
	if g.suspect(ms(105)) {
		t.Fatal("suspect while the ticker runs on time")
	}
	// Resumed, before the ticker has run: its last tick is far behind.
	if !g.suspect(ms(400)) {
		t.Fatal("not suspect with the last tick 300 ms ago")
	}
	g.tick(ms(400))
	for now := 410; now < 400+int(pauseWindow/time.Millisecond); now += 10 {
		g.tick(ms(now))
		if !g.suspect(ms(now)) {
			t.Fatalf("not suspect %d ms after the stop, inside the window", now-400)
		}
	}
	end := 400 + int(pauseWindow/time.Millisecond)
	g.tick(ms(end))
	if g.suspect(ms(end + 1)) {
		t.Fatal("still suspect after the window, with the ticker on time")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// stopped makes n's guard look as if the process had just resumed from a stop.
func stopped(n *Node) {
	n.pause.last.Store(n.pause.now() - int64(time.Second))
}

func TestLeaderConfirmsWithABarrierAfterAStop(t *testing.T) {
	tc := mustCluster(t, 3)
	l := tc.leader()
	mustRegister(t, l, "before", nil)
	before := counterValue(t, l.metrics.barrierReads)

	stopped(l)
	if err := l.ConsistentRead(context.Background()); err != nil {
		t.Fatalf("read after a stop: %v", err)
	}
	if got := counterValue(t, l.metrics.barrierReads); got != before+1 {
		t.Fatalf("barrier reads: got %v, want %v", got, before+1)
	}
	if _, ok, _ := l.FSM().User("before"); !ok {
		t.Fatal("the read does not see a write acknowledged before it")
	}
}

func TestStoppedAndIsolatedLeaderServesNoRead(t *testing.T) {
	tc := mustCluster(t, 3)
	old := tc.leader()
	mustRegister(t, old, "before", nil)
	tc.partition(old.ID())
	stopped(old)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := old.ConsistentRead(ctx); err == nil {
		t.Fatal("an isolated leader that had stopped served a linearizable read")
	}
}
