package main

import (
	"encoding/json"
	"fmt"
	"os"
)

// TargetCheck is one performance target of the issue, checked against the runs of an
// invocation. Targets are for `make bench` (three nodes on one 2-core machine, 300-byte
// texts over 1,000 conversations); they are reported, never asserted.
type TargetCheck struct {
	Name string `json:"name"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

// throughputTarget is a floor on throughput and an optional ceiling on p99 at one
// concurrency; a run with errors misses it.
type throughputTarget struct {
	workload string
	c        int
	minOps   float64
	maxP99Ms float64 // 0: none
}

var targetTable = []throughputTarget{
	{"send_single", 64, 7000, 20},
	{"send_single", 16, 3000, 12},
	{"send_single", 1, 600, 4},
	{"read_user", 64, 15000, 0},
}

// scalingMin is the second performance round's rule for c = 16: at least this share of the
// c = 64 run's rate per connection, times 16 (a loaded cluster must not make the few
// writers of a quieter one wait for nothing).
const scalingMin = 0.8

// groupCostMax is how much more a group message to a 1,000-member group may cost than a
// single-chat message, measured as the ratio of their throughputs at equal concurrency.
const groupCostMax = 2.0

// checkTargets evaluates the targets whose runs are present in runs.
func checkTargets(runs []*Result) []TargetCheck {
	find := func(workload string, c int) *Result {
		for _, r := range runs {
			if r.Workload == workload && r.Concurrency == c {
				return r
			}
		}
		return nil
	}
	var out []TargetCheck
	for _, t := range targetTable {
		r := find(t.workload, t.c)
		if r == nil {
			continue
		}
		name := fmt.Sprintf("%s c=%d >= %.0f/s", t.workload, t.c, t.minOps)
		if t.maxP99Ms > 0 {
			name += fmt.Sprintf(", p99 <= %.0fms", t.maxP99Ms)
		}
		pass := r.Throughput >= t.minOps && r.Errors == 0 && (t.maxP99Ms == 0 || r.Latency.P99Ms <= t.maxP99Ms)
		out = append(out, TargetCheck{Name: name, Pass: pass,
			Got: fmt.Sprintf("%.0f/s, p99 %.2fms, %d errors", r.Throughput, r.Latency.P99Ms, r.Errors)})
	}
	if s64, s16 := find("send_single", 64), find("send_single", 16); s64 != nil && s16 != nil {
		floor := scalingMin * s64.Throughput / 64 * 16
		out = append(out, TargetCheck{
			Name: fmt.Sprintf("scaling c=16 >= %.1f x c=64's rate per connection x 16 (%.0f/s)", scalingMin, floor),
			Pass: s16.Throughput >= floor && s16.Errors == 0,
			Got:  fmt.Sprintf("%.0f/s (c=64: %.0f/s), %d errors", s16.Throughput, s64.Throughput, s16.Errors),
		})
	}
	for _, g := range runs {
		if g.Workload != "send_group" || g.GroupSize != 1000 {
			continue
		}
		s := find("send_single", g.Concurrency)
		if s == nil || g.Throughput == 0 {
			continue
		}
		ratio := s.Throughput / g.Throughput
		out = append(out, TargetCheck{
			Name: fmt.Sprintf("send_group(1000) c=%d costs <= %.0fx send_single", g.Concurrency, groupCostMax),
			Pass: ratio <= groupCostMax && g.Errors == 0,
			Got: fmt.Sprintf("%.2fx (%.0f/s vs %.0f/s; p50 %.2fms vs %.2fms)", ratio, g.Throughput, s.Throughput,
				g.Latency.P50Ms, s.Latency.P50Ms),
		})
	}
	return out
}

// Issue 12's c = 64 target: at least ceilingMin times the bare-raft ceiling measured in the
// same session (bin/raftceiling, `make bench-ceiling`), with p99 at most ceilingMaxP99Ms.
const (
	ceilingC        = 64
	ceilingMin      = 1.5
	ceilingMaxP99Ms = 20
)

// readCeilings reads bin/raftceiling's -json files and returns the mean applies/s at each
// concurrency (bench-shapes measures bare raft before and after the shapes).
func readCeilings(paths []string) (map[int]float64, error) {
	sum, n := map[int]float64{}, map[int]int{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var runs []struct {
			Concurrency int     `json:"concurrency"`
			PerSecond   float64 `json:"per_second"`
		}
		if err := json.Unmarshal(b, &runs); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, r := range runs {
			sum[r.Concurrency] += r.PerSecond
			n[r.Concurrency]++
		}
	}
	out := map[int]float64{}
	for c, s := range sum {
		out[c] = s / float64(n[c])
	}
	return out, nil
}

// checkCeiling checks every write run at c = 64 against the ceiling at 64, if there is one.
func checkCeiling(runs []*Result, ceiling map[int]float64) []TargetCheck {
	bare := ceiling[ceilingC]
	if bare == 0 {
		return nil
	}
	var out []TargetCheck
	for _, r := range runs {
		if r.Concurrency != ceilingC || (r.Workload != "send_single" && r.Workload != "send_group") {
			continue
		}
		ratio, workload := r.Throughput/bare, r.Workload
		if workload == "send_group" {
			workload = fmt.Sprintf("send_group(%d)", r.GroupSize)
		}
		out = append(out, TargetCheck{
			Name: fmt.Sprintf("%s c=%d (%s) >= %.1fx bare raft (%.0f/s), p99 <= %dms",
				workload, ceilingC, r.Shape, ceilingMin, bare, ceilingMaxP99Ms),
			Pass: ratio >= ceilingMin && r.Latency.P99Ms <= ceilingMaxP99Ms && r.Errors == 0,
			Got:  fmt.Sprintf("%.0f/s = %.2fx bare raft, p99 %.2fms, %d errors", r.Throughput, ratio, r.Latency.P99Ms, r.Errors),
		})
	}
	return out
}
