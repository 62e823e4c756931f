package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Latency is a latency summary in milliseconds, over successful operations only.
type Latency struct {
	Count  int64   `json:"count"`
	MinMs  float64 `json:"minMs"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P95Ms  float64 `json:"p95Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func latencyOf(s *Snapshot) Latency {
	return Latency{
		Count: s.Count, MinMs: ms(time.Duration(s.Min)), MeanMs: ms(s.Mean()),
		P50Ms: ms(s.Quantile(0.50)), P95Ms: ms(s.Quantile(0.95)), P99Ms: ms(s.Quantile(0.99)),
		P999Ms: ms(s.Quantile(0.999)), MaxMs: ms(time.Duration(s.Max)),
	}
}

// KindResult is the share of one request kind in a run (several in a mix).
type KindResult struct {
	Kind       string  `json:"kind"`
	OK         int64   `json:"ok"`
	Errors     int64   `json:"errors"`
	Throughput float64 `json:"throughput"`
	Latency    Latency `json:"latency"`
}

// NodeResult is the share of one target node in a run.
type NodeResult struct {
	Addr       string  `json:"addr"`
	OK         int64   `json:"ok"`
	Errors     int64   `json:"errors"`
	Throughput float64 `json:"throughput"`
	Latency    Latency `json:"latency"`
}

// Result is the outcome of one run (one workload at one concurrency). Throughput counts
// successful operations per second of measured time; errors are counted by errCode and by
// transport error class, and never enter the latency figures.
type Result struct {
	Workload    string    `json:"workload"`
	Nodes       []string  `json:"nodes"`
	Concurrency int       `json:"concurrency"`
	StartedAt   time.Time `json:"startedAt"`
	DurationS   float64   `json:"durationS"`
	MsgBytes    int       `json:"msgBytes"`
	Users       int       `json:"users"`
	Convs       int       `json:"convs"`
	GroupSize   int       `json:"groupSize,omitempty"`
	Consistency string    `json:"consistency"`
	// Shape is the load's shape: hot conversations, target nodes, connections.
	Shape string `json:"shape"`

	OK         int64   `json:"ok"`
	Errors     int64   `json:"errors"`
	Throughput float64 `json:"throughput"`
	Latency    Latency `json:"latency"`
	// ErrorsByCode counts answers with errCode != 0, keyed by the code.
	ErrorsByCode map[string]int64 `json:"errorsByCode"`
	// TransportErrors counts requests without a usable answer, keyed by class.
	TransportErrors map[string]int64 `json:"transportErrors"`
	// ErrorSamples holds the first answer or error text seen per key.
	ErrorSamples map[string]string `json:"errorSamples,omitempty"`
	Kinds        []KindResult      `json:"kinds"`
	PerNode      []NodeResult      `json:"perNode"`
}

func (r *recorder) result(o *options, workload string, start, end time.Time) *Result {
	secs := end.Sub(start).Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	all := r.all.Snapshot()
	res := &Result{
		Workload: workload, Nodes: o.nodes, Concurrency: o.concurrency, StartedAt: start.UTC(),
		DurationS: secs, MsgBytes: o.msgBytes, Users: o.users, Convs: o.convs, Consistency: "linearizable",
		OK: all.Count, Errors: r.errOps.Load(), Throughput: float64(all.Count) / secs, Latency: latencyOf(all),
		ErrorsByCode: map[string]int64{}, TransportErrors: map[string]int64{}, ErrorSamples: map[string]string{},
	}
	if o.stale {
		res.Consistency = "stale"
	}
	res.Shape = o.shape()
	if workload == "send_group" || (workload == "mix" && o.mixWeights[kindSendGroup] > 0) {
		res.GroupSize = o.groupSize
	}
	r.mu.Lock()
	for k, v := range r.codes {
		res.ErrorsByCode[k] = v
	}
	for k, v := range r.transport {
		res.TransportErrors[k] = v
	}
	for k, v := range r.errSamples {
		res.ErrorSamples[k] = v
	}
	r.mu.Unlock()
	for k := range r.kinds {
		s := r.kinds[k].Snapshot()
		if s.Count == 0 && r.kindErrs[k].Load() == 0 {
			continue
		}
		res.Kinds = append(res.Kinds, KindResult{Kind: kindNames[k], OK: s.Count, Errors: r.kindErrs[k].Load(),
			Throughput: float64(s.Count) / secs, Latency: latencyOf(s)})
	}
	for i, h := range r.nodes {
		s := h.Snapshot()
		res.PerNode = append(res.PerNode, NodeResult{Addr: o.nodes[i], OK: s.Count, Errors: r.nodeErrs[i].Load(),
			Throughput: float64(s.Count) / secs, Latency: latencyOf(s)})
	}
	return res
}

// fmtDur prints a latency with three significant digits in a unit a person reads at once.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func msDur(v float64) time.Duration { return time.Duration(v * 1e6) }

func fmtLat(l Latency) string {
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s  (mean %s)",
		fmtDur(msDur(l.P50Ms)), fmtDur(msDur(l.P95Ms)), fmtDur(msDur(l.P99Ms)), fmtDur(msDur(l.MaxMs)), fmtDur(msDur(l.MeanMs)))
}

// WriteText prints the result for a person.
func (res *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "== %s  c=%d  %d node(s)  %.1fs", res.Workload, res.Concurrency, len(res.Nodes), res.DurationS)
	if res.hasReads() {
		fmt.Fprintf(w, "  %s reads", res.Consistency)
	}
	if res.GroupSize > 0 {
		fmt.Fprintf(w, "  group of %d", res.GroupSize)
	}
	fmt.Fprintf(w, "  %s\n", res.Shape)
	fmt.Fprintf(w, "throughput  %.0f ops/s   (%d ok, %d errors)\n", res.Throughput, res.OK, res.Errors)
	fmt.Fprintf(w, "latency     %s\n", fmtLat(res.Latency))
	if len(res.Kinds) > 1 {
		for _, k := range res.Kinds {
			fmt.Fprintf(w, "  %-12s %8.0f/s  %s  errors %d\n", k.Kind, k.Throughput, fmtLat(k.Latency), k.Errors)
		}
	}
	if len(res.PerNode) > 1 {
		for _, n := range res.PerNode {
			fmt.Fprintf(w, "  node %-21s %8.0f/s  p50 %s  p99 %s  errors %d\n", n.Addr, n.Throughput,
				fmtDur(msDur(n.Latency.P50Ms)), fmtDur(msDur(n.Latency.P99Ms)), n.Errors)
		}
	}
	if res.Errors > 0 {
		fmt.Fprintf(w, "errors      %s\n", fmtErrors(res))
		keys := sortedKeys(res.ErrorSamples)
		for _, k := range keys {
			fmt.Fprintf(w, "  first %s: %s\n", k, strings.TrimSpace(res.ErrorSamples[k]))
		}
	}
}

func (res *Result) hasReads() bool {
	for _, k := range res.Kinds {
		if kind, ok := kindByName(k.Kind); ok && !kind.isWrite() {
			return true
		}
	}
	return false
}

func fmtErrors(res *Result) string {
	var parts []string
	for _, k := range sortedKeys(res.ErrorsByCode) {
		parts = append(parts, fmt.Sprintf("errCode %s: %d", k, res.ErrorsByCode[k]))
	}
	for _, k := range sortedKeys(res.TransportErrors) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, res.TransportErrors[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Report is what -json writes: every run of the invocation, and the targets when asked.
type Report struct {
	Tool    string        `json:"tool"`
	Args    []string      `json:"args"`
	Runs    []*Result     `json:"runs"`
	Targets []TargetCheck `json:"targets,omitempty"`
}

// WriteJSON writes the report to path atomically (a temporary file renamed into place).
func (rep *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// WriteSummary prints one line per run, the table a sweep ends with.
func (rep *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "%-12s %5s %10s %9s %9s %9s %9s %8s  %s\n", "workload", "c", "ops/s", "p50", "p95", "p99", "max", "errors", "shape")
	for _, r := range rep.Runs {
		fmt.Fprintf(w, "%-12s %5d %10.0f %9s %9s %9s %9s %8d  %s\n", r.Workload, r.Concurrency, r.Throughput,
			fmtDur(msDur(r.Latency.P50Ms)), fmtDur(msDur(r.Latency.P95Ms)), fmtDur(msDur(r.Latency.P99Ms)),
			fmtDur(msDur(r.Latency.MaxMs)), r.Errors, r.Shape)
	}
	for _, t := range rep.Targets {
		verdict := "MISS"
		if t.Pass {
			verdict = "ok"
		}
		fmt.Fprintf(w, "target %-4s %s: %s\n", verdict, t.Name, t.Got)
	}
}
