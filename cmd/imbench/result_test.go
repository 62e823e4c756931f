package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseErrCode(t *testing.T) {
	for _, c := range []struct {
		body string
		code int
		ok   bool
	}{
		{`{"errCode":0,"errMsg":"","msgID":"x"}`, 0, true},
		{`{"errCode": 1801,"errMsg":"no leader"}`, 1801, true},
		{`{"errMsg":"x","errCode":-1}`, -1, true},
		{`{"errMsg":"x"}`, 0, false},
		{`{"errCode":"x"}`, 0, false},
		{``, 0, false},
	} {
		code, ok := parseErrCode([]byte(c.body))
		if code != c.code || ok != c.ok {
			t.Errorf("parseErrCode(%s): got %d %v, want %d %v", c.body, code, ok, c.code, c.ok)
		}
	}
}

// recordedResult builds a Result from known records: 1,000 sends of 1..1000 µs on two
// nodes, 30 answers with 1801, 2 refused connections.
func recordedResult(t *testing.T) *Result {
	t.Helper()
	o := mustOptions(t, "-nodes", "a:1,b:2", "-c", "8", "-users", "20", "-convs", "10", "-group-size", "10")
	rec := newRecorder(2)
	for i := 1; i <= 1000; i++ {
		rec.ok(kindSendSingle, i%2, time.Duration(i)*time.Microsecond)
	}
	for i := 0; i < 30; i++ {
		rec.fail(kindSendSingle, 0, "1801", "", `{"errCode":1801,"errMsg":"no leader"}`)
	}
	rec.fail(kindSendSingle, 1, "", "connection refused", "dial tcp: refused")
	rec.fail(kindSendSingle, 1, "", "connection refused", "dial tcp: refused again")
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return rec.result(o, "send_single", start, start.Add(2*time.Second))
}

func TestResultFigures(t *testing.T) {
	res := recordedResult(t)
	if res.OK != 1000 || res.Errors != 32 || res.Throughput != 500 || res.DurationS != 2 {
		t.Errorf("ok/errors/throughput/duration: got %d/%d/%v/%v, want 1000/32/500/2", res.OK, res.Errors, res.Throughput, res.DurationS)
	}
	near := func(got, want float64) bool { return got >= want && got <= want*(1+1.0/subCount)+0.001 }
	if l := res.Latency; !near(l.P50Ms, 0.5) || !near(l.P95Ms, 0.95) || !near(l.P99Ms, 0.99) || l.MaxMs != 1 || l.MinMs != 0.001 {
		t.Errorf("latency: got %+v, want p50 0.5 p95 0.95 p99 0.99 max 1 min 0.001 ms", l)
	}
	if res.ErrorsByCode["1801"] != 30 || res.TransportErrors["connection refused"] != 2 {
		t.Errorf("errors: got %v %v", res.ErrorsByCode, res.TransportErrors)
	}
	if got := res.ErrorSamples["connection refused"]; got != "dial tcp: refused" {
		t.Errorf("sample: got %q, want the first one", got)
	}
	if res.PerNode[0].Errors != 30 || res.PerNode[1].Errors != 2 || res.PerNode[0].OK != 500 {
		t.Errorf("per node: got %+v", res.PerNode)
	}
}

func TestResultText(t *testing.T) {
	var b bytes.Buffer
	recordedResult(t).WriteText(&b)
	out := b.String()
	for _, want := range []string{"send_single  c=8", "throughput  500 ops/s", "p99 ", "errCode 1801: 30", "connection refused: 2", "node a:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

func TestReportJSON(t *testing.T) {
	rep := &Report{Tool: "imbench", Args: []string{"-c", "8"}, Runs: []*Result{recordedResult(t)}}
	rep.Targets = checkTargets(rep.Runs)
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	run := generic["runs"].([]any)[0].(map[string]any)
	for _, k := range []string{"workload", "concurrency", "throughput", "latency", "errorsByCode", "transportErrors", "perNode", "kinds", "durationS"} {
		if _, ok := run[k]; !ok {
			t.Errorf("run JSON lacks %q: %s", k, b)
		}
	}
	lat := run["latency"].(map[string]any)
	for _, k := range []string{"p50Ms", "p95Ms", "p99Ms", "maxMs"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency JSON lacks %q", k)
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Runs[0].ErrorsByCode["1801"] != 30 {
		t.Errorf("round trip: err %v, got %+v", err, back.Runs)
	}
}

func TestCheckTargets(t *testing.T) {
	runs := []*Result{
		{Workload: "send_single", Concurrency: 64, Throughput: 7500, Latency: Latency{P99Ms: 18}},
		{Workload: "send_single", Concurrency: 16, Throughput: 3500, Latency: Latency{P99Ms: 13}},
		{Workload: "send_single", Concurrency: 1, Throughput: 700, Latency: Latency{P99Ms: 3}, Errors: 1},
		{Workload: "read_user", Concurrency: 64, Throughput: 16000},
		{Workload: "send_group", GroupSize: 1000, Concurrency: 64, Throughput: 3000},
		{Workload: "send_group", GroupSize: 1000, Concurrency: 16, Throughput: 2000},
	}
	want := map[string]bool{
		"send_single c=64": true, "send_single c=16": false, "send_single c=1": false,
		"read_user c=64": true, "send_group(1000) c=64": false, "send_group(1000) c=16": true,
		"scaling c=16": true, // 3,500/s against 0.8 × 7,500 / 64 × 16 = 1,500/s
	}
	got := checkTargets(runs)
	runs[1].Throughput = 1400 // below 1,500/s: the scaling rule misses
	for _, c := range checkTargets(runs) {
		if strings.HasPrefix(c.Name, "scaling c=16 ") && c.Pass {
			t.Errorf("%s: passed with %s", c.Name, c.Got)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d checks, want %d: %+v", len(got), len(want), got)
	}
	for _, c := range got {
		matched := false
		for prefix, pass := range want {
			if strings.HasPrefix(c.Name, prefix+" ") {
				matched = true
				if c.Pass != pass {
					t.Errorf("%s: got pass=%v, want %v (%s)", c.Name, c.Pass, pass, c.Got)
				}
			}
		}
		if !matched {
			t.Errorf("unexpected check %q", c.Name)
		}
	}
}

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 450 * time.Microsecond: "450µs", 1234 * time.Microsecond: "1.23ms",
		25400 * time.Microsecond: "25.4ms", 1500 * time.Millisecond: "1.50s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v): got %q, want %q", d, got, want)
		}
	}
}

// -ceiling averages the bare-raft files by concurrency and checks the write runs at c = 64
// against 1.5 times that, with p99 at most 20 ms.
func TestCheckCeiling(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, perSecond := range []float64{9000, 11000} {
		p := filepath.Join(dir, fmt.Sprintf("ceiling%d.json", i))
		body := fmt.Sprintf(`[{"concurrency":16,"per_second":3000},{"concurrency":64,"per_second":%g}]`, perSecond)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	ceiling, err := readCeilings(paths)
	if err != nil || ceiling[64] != 10000 || ceiling[16] != 3000 {
		t.Fatalf("readCeilings: %v, %v; want 10000/s at 64 and 3000/s at 16", ceiling, err)
	}
	runs := []*Result{
		{Workload: "send_single", Concurrency: 64, Throughput: 15500, Latency: Latency{P99Ms: 19}, Shape: "fast"},
		{Workload: "send_single", Concurrency: 64, Throughput: 7300, Latency: Latency{P99Ms: 17}, Shape: "slow"},
		{Workload: "send_group", GroupSize: 100, Concurrency: 64, Throughput: 16000, Latency: Latency{P99Ms: 25}, Shape: "late"},
		{Workload: "send_single", Concurrency: 64, Throughput: 16000, Latency: Latency{P99Ms: 10}, Errors: 1, Shape: "errs"},
		{Workload: "send_single", Concurrency: 16, Throughput: 9000, Shape: "c16"},
		{Workload: "read_user", Concurrency: 64, Throughput: 30000, Shape: "reads"},
	}
	want := map[string]bool{"fast": true, "slow": false, "late": false, "errs": false}
	got := checkCeiling(runs, ceiling)
	if len(got) != len(want) {
		t.Fatalf("got %d checks, want %d: %+v", len(got), len(want), got)
	}
	for _, c := range got {
		_, shape, _ := strings.Cut(c.Name, " c=64 (")
		shape, _, _ = strings.Cut(shape, ")")
		if pass, ok := want[shape]; !ok || c.Pass != pass {
			t.Errorf("%s: pass=%v (%s), want %v", c.Name, c.Pass, c.Got, pass)
		}
	}
	if checkCeiling(runs, nil) != nil {
		t.Errorf("checks without a ceiling")
	}
	if _, err := readCeilings([]string{filepath.Join(dir, "missing.json")}); err == nil {
		t.Errorf("readCeilings of a missing file: no error")
	}
}
