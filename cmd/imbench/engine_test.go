package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustOptions(t *testing.T, args ...string) *options {
	t.Helper()
	o, err := parseOptions(args, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseOptions(%q): %v", args, err)
	}
	o.concurrency = o.concs[0]
	return o
}

// localFixture is what setup would produce, without a server.
func localFixture(o *options) *fixture {
	f := newFixture(o)
	for _, n := range groupSizes {
		if n <= o.users {
			f.groups[n] = &benchGroup{id: strings.Repeat("a", 32), members: f.users[:n]}
		}
	}
	f.group = f.groups[o.groupSize]
	return f
}

func TestEngineCountsEveryOperation(t *testing.T) {
	node := newFakeNode()
	node.failEvery = 10
	dial := serveInMemory(t, node)
	o := mustOptions(t, "-nodes", "n1:1,n2:2", "-workload", "send_single", "-c", "4", "-n", "200", "-users", "20", "-convs", "10", "-group-size", "10")
	var prog bytes.Buffer
	e := &env{ctx: context.Background(), o: o, f: localFixture(o), token: "tok", wl: workloads["send_single"], dial: dial, progOut: &prog}
	res, err := runHTTP(e)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK+res.Errors != 200 {
		t.Errorf("ok+errors: got %d+%d, want 200", res.OK, res.Errors)
	}
	if got := res.ErrorsByCode["1801"]; got != 20 || res.Errors != 20 {
		t.Errorf("1801 errors: got %d of %d, want 20 of 20 (%v %v)", got, res.Errors, res.ErrorsByCode, res.TransportErrors)
	}
	if res.Latency.Count != res.OK || res.Latency.P50Ms <= 0 || res.Latency.P99Ms < res.Latency.P50Ms || res.Latency.MaxMs < res.Latency.P99Ms {
		t.Errorf("latency not ordered: %+v", res.Latency)
	}
	if len(res.PerNode) != 2 || res.PerNode[0].OK+res.PerNode[1].OK != res.OK || res.PerNode[0].OK == 0 || res.PerNode[1].OK == 0 {
		t.Errorf("per node: got %+v, want both nodes used, adding up to %d", res.PerNode, res.OK)
	}
	if len(res.Kinds) != 1 || res.Kinds[0].Kind != "send_single" {
		t.Errorf("kinds: got %+v, want send_single only", res.Kinds)
	}
	node.mu.Lock()
	defer node.mu.Unlock()
	if node.dupOpIDs != 0 {
		t.Errorf("operationIDs repeated %d times, want unique", node.dupOpIDs)
	}
	if len(node.seqs) != 10 {
		t.Errorf("conversations used: got %d, want all 10", len(node.seqs))
	}
}

func TestEngineMixAndDuration(t *testing.T) {
	node := newFakeNode()
	dial := serveInMemory(t, node)
	o := mustOptions(t, "-nodes", "n1:1", "-workload", "mix", "-mix", "send_single=2,send_group=1,read_user=1,pull=1",
		"-c", "3", "-d", "300ms", "-progress", "100ms", "-users", "20", "-convs", "10", "-group-size", "10", "-read-batch", "3")
	var prog bytes.Buffer
	start := time.Now()
	res, err := runHTTP(&env{ctx: context.Background(), o: o, f: localFixture(o), token: "tok", wl: workloads["mix"], dial: dial, progOut: &prog})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 5*time.Second {
		t.Errorf("run took %v, want about 300ms", el)
	}
	if res.Errors != 0 || res.OK == 0 {
		t.Fatalf("got %d ok, %d errors (%v), want some ok and none failed", res.OK, res.Errors, res.ErrorSamples)
	}
	seen := map[string]bool{}
	for _, k := range res.Kinds {
		seen[k.Kind] = k.OK > 0
	}
	for _, k := range kindNames {
		if !seen[k] {
			t.Errorf("kind %s not in the mix result %+v", k, res.Kinds)
		}
	}
	if !strings.Contains(prog.String(), "ok") {
		t.Errorf("no progress line in %q", prog.String())
	}
}

func TestEngineTransportErrors(t *testing.T) {
	// Nothing listens on this port: every request is refused and classified, none hangs.
	o := mustOptions(t, "-nodes", "127.0.0.1:31999", "-c", "2", "-n", "10", "-users", "4", "-convs", "2", "-group-size", "10", "-timeout", "1s")
	res, err := runHTTP(&env{ctx: context.Background(), o: o, f: localFixture(o), token: "tok", wl: workloads["send_single"]})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Errors != 10 || res.TransportErrors["connection refused"] != 10 {
		t.Errorf("got %d ok, %d errors %v, want 10 refused", res.OK, res.Errors, res.TransportErrors)
	}
}

func TestRunSetsUpOnceAndWritesJSON(t *testing.T) {
	node := newFakeNode()
	addr := serveLoopback(t, node)
	out := filepath.Join(t.TempDir(), "bench.json")
	args := []string{"-nodes", addr, "-workload", "send_single,send_group,read_user", "-c", "1,2", "-n", "30",
		"-users", "120", "-convs", "50", "-group-size", "100", "-progress", "0", "-json", out, "-targets"}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), mustOptions(t, args...), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	// admin + 120 users + the marker.
	if got := node.count("auth/user_register"); got != 122 {
		t.Errorf("first run registered %d users, want 122", got)
	}
	if got := node.count("group/create_group"); got != 2 {
		t.Errorf("groups created: got %d, want 2 (10 and 100; 1000 > users)", got)
	}
	node.mu.Lock()
	for id, n := range node.groups {
		if n != 10 && n != 100 {
			t.Errorf("group %s has %d members, want 10 or 100", id, n)
		}
	}
	node.mu.Unlock()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("bad JSON: %v", err)
	}
	if len(rep.Runs) != 6 {
		t.Fatalf("runs in JSON: got %d, want 6", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.OK != 30 || r.Errors != 0 {
			t.Errorf("%s c=%d: got %d ok %d errors, want 30 ok", r.Workload, r.Concurrency, r.OK, r.Errors)
		}
	}
	if !strings.Contains(stdout.String(), "workload") || !strings.Contains(stdout.String(), "throughput") {
		t.Errorf("no summary in output:\n%s", stdout.String())
	}

	// A second invocation finds the marker and registers nobody but the admin.
	stderr.Reset()
	if err := run(context.Background(), mustOptions(t, args...), &stdout, &stderr); err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr.String())
	}
	if got := node.count("auth/user_register"); got != 123 {
		t.Errorf("after the second run: %d registrations, want 123 (setup reused)", got)
	}
	if !strings.Contains(stderr.String(), "reusing") {
		t.Errorf("second run did not say it reused the setup:\n%s", stderr.String())
	}
	if got := node.count("group/create_group"); got != 2 {
		t.Errorf("groups created after second run: got %d, want still 2", got)
	}
}

func TestParseOptions(t *testing.T) {
	o := mustOptions(t, "-n", "100")
	if o.duration != hardMaxDuration {
		t.Errorf("-n without -d: duration %v, want the cap %v", o.duration, hardMaxDuration)
	}
	o = mustOptions(t, "-n", "100", "-d", "2s", "-c", "1, 16,64")
	if o.duration != 2*time.Second || len(o.concs) != 3 || o.concs[2] != 64 {
		t.Errorf("got d=%v concs=%v, want 2s [1 16 64]", o.duration, o.concs)
	}
	for _, bad := range [][]string{
		{"-d", "11m"}, {"-n", "-1"}, {"-c", "0"}, {"-c", "x"}, {"-workload", "nope"}, {"-workload", "ws_idle"},
		{"-nodes", "localhost"}, {"-group-size", "50"}, {"-users", "100", "-workload", "send_group"},
		{"-convs", "10000", "-users", "10"}, {"-mix", "send_single=0"}, {"-mix", "bogus=1"}, {"-setup", "sometimes"},
	} {
		if _, err := parseOptions(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("parseOptions(%q): no error, want one", bad)
		}
	}
}
