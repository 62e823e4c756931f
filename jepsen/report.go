package jepsen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeReport writes the run directory's summary.txt, summary.json and history.jsonl.
func writeReport(res *Result, h *History) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(res.Dir, "summary.json"), b, 0o644); err != nil {
		return err
	}
	if err := WriteJSONL(filepath.Join(res.Dir, "history.jsonl"), h.Ops("")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(res.Dir, "summary.txt"), []byte(Summary(res)), 0o644)
}

// Summary renders a result for people: the parameters, the fault timeline, the operation
// counts and each checker's verdict with its problems.
func Summary(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "imjepsen run %s\n", filepath.Base(res.Dir))
	fmt.Fprintf(&b, "seed %d, %d nodes, %s under faults [%s], stale reads %v\n\n", res.Seed, res.Nodes, res.Duration, strings.Join(res.Faults, " "), res.Stale)
	fmt.Fprintf(&b, "fault timeline (seconds since start):\n")
	if len(res.Timeline) == 0 {
		fmt.Fprintf(&b, "  (none)\n")
	}
	for _, e := range res.Timeline {
		fmt.Fprintf(&b, "  %7.2f - %7.2f  %-16s %s", float64(e.Start)/1e9, float64(e.End)/1e9, e.Fault, e.Detail)
		if e.Heal != "" {
			fmt.Fprintf(&b, " => %s", e.Heal)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\noperations (ok / fail / unknown):\n")
	for _, w := range sortedKeys(res.Counts) {
		c := res.Counts[w]
		fmt.Fprintf(&b, "  %-10s %6d / %6d / %6d\n", w, c.OK, c.Fail, c.Unknown)
	}
	fmt.Fprintf(&b, "\nstates sent to a node and restored (InstallSnapshot): %d\n", res.StatesRestored)
	fmt.Fprintf(&b, "\ndigests after healing:\n")
	for _, d := range res.Digests {
		if d.Err != "" {
			fmt.Fprintf(&b, "  %-4s error: %s\n", d.Node, d.Err)
		} else {
			fmt.Fprintf(&b, "  %-4s applied %d digest %s\n", d.Node, d.AppliedIndex, d.Digest)
		}
	}
	fmt.Fprintf(&b, "\nverdicts:\n")
	for _, v := range res.Verdicts {
		mark := "PASS"
		if !v.Valid {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %-11s %s\n", mark, v.Checker, v.Summary)
		for _, f := range v.Files {
			fmt.Fprintf(&b, "       see %s\n", filepath.Base(f))
		}
		for _, p := range v.Problems {
			fmt.Fprintf(&b, "       - %s\n", p)
		}
	}
	for _, e := range res.Errors {
		fmt.Fprintf(&b, "\nrun error: %s\n", e)
	}
	result := "VALID: no violation found"
	if !res.Valid {
		result = "INVALID: see the FAIL lines and run errors above"
	}
	fmt.Fprintf(&b, "\nresult: %s\n", result)
	return b.String()
}
