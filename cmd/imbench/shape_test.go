package main

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestHotConvsSkew(t *testing.T) {
	o := mustOptions(t, "-users", "200", "-convs", "100", "-hot-convs", "5", "-hot-frac", "0.9", "-c", "4")
	g := newMixGen(localFixture(o), o, 1, single(kindSendSingle))
	const ops = 20000
	hot, cold := 0, map[int]bool{}
	for j := uint64(0); j < ops; j++ {
		if c := g.conv(j); c < 5 {
			hot++
		} else {
			cold[c] = true
		}
	}
	if f := float64(hot) / ops; f < 0.88 || f > 0.92 {
		t.Errorf("hot fraction %.3f, want ~0.9", f)
	}
	if len(cold) < 90 {
		t.Errorf("%d cold conversations used, want nearly all 95", len(cold))
	}
	// Without skew every conversation is walked.
	o = mustOptions(t, "-users", "200", "-convs", "100", "-c", "4")
	g = newMixGen(localFixture(o), o, 1, single(kindSendSingle))
	seen := map[int]bool{}
	for j := uint64(0); j < 100; j++ {
		seen[g.conv(j)] = true
	}
	if len(seen) != 100 {
		t.Errorf("spread: %d conversations, want 100", len(seen))
	}
}

func TestShapeOptionsAreChecked(t *testing.T) {
	for _, args := range [][]string{
		{"-nodes", "a:1,b:2", "-target", "node3"},
		{"-target", "node0"},
		{"-target", "some"},
		{"-convs", "10", "-users", "20", "-hot-convs", "11"},
		{"-hot-convs", "2", "-hot-frac", "1.5"},
	} {
		if _, err := parseOptions(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	o := mustOptions(t, "-nodes", "a:1,b:2", "-target", "node2", "-new-conns", "-convs", "20", "-hot-convs", "2")
	if got, want := o.shape(), "convs=20 hot=2@90% target=node2 new-conns"; got != want {
		t.Errorf("shape: got %q, want %q", got, want)
	}
}

// -target nodeN sends only to that node; -new-conns opens a connection per request.
func TestTargetAndNewConns(t *testing.T) {
	for _, newConns := range []bool{false, true} {
		node := newFakeNode()
		inner := serveInMemory(t, node)
		var dials atomic.Int64
		dial := fasthttp.DialFunc(func(addr string) (net.Conn, error) {
			dials.Add(1)
			return inner(addr)
		})
		args := []string{"-nodes", "n1:1,n2:2,n3:3", "-target", "node2", "-workload", "send_single", "-c", "2",
			"-n", "60", "-users", "20", "-convs", "10"}
		if newConns {
			args = append(args, "-new-conns")
		}
		o := mustOptions(t, args...)
		res, err := runHTTP(&env{ctx: context.Background(), o: o, f: localFixture(o), token: "tok", wl: workloads["send_single"], dial: dial})
		if err != nil {
			t.Fatal(err)
		}
		if res.OK != 60 || res.PerNode[0].OK != 0 || res.PerNode[2].OK != 0 || res.PerNode[1].OK != 60 {
			t.Fatalf("new-conns=%v: per node %+v, want all 60 on node2", newConns, res.PerNode)
		}
		if d := dials.Load(); newConns && d < 60 || !newConns && d > 4 {
			t.Fatalf("new-conns=%v: %d dials for 60 requests", newConns, d)
		}
	}
}
