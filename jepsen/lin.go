package jepsen

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is one checker's conclusion.
type Verdict struct {
	Checker  string   `json:"checker"`
	Valid    bool     `json:"valid"`
	Summary  string   `json:"summary"`
	Problems []string `json:"problems,omitempty"`
	Files    []string `json:"files,omitempty"`
}

// maxProblems bounds the problems a checker lists; the count is in the summary.
const maxProblems = 50

func (v *Verdict) problem(format string, args ...interface{}) {
	v.Valid = false
	if len(v.Problems) < maxProblems {
		v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
	}
}

// keyed is what every linearizability model's input carries: the partition key.
type keyed interface{ key() string }

// partitionByKey splits a history into one partition per key (a uid, a group).
func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		k := op.Input.(keyed).key()
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// toPorcupine turns recorded ops into porcupine operations. Failed ops are left out (they
// did not happen); unknown ones never return (they may happen at any time after their
// invocation, or not at all); conv gives the model's input and output of an op, or ok
// false to leave it out (a failed read). Client IDs are renumbered densely for the
// visualization.
func toPorcupine(ops []Op, conv func(Op) (in, out interface{}, ok bool)) []porcupine.Operation {
	var horizon int64
	for _, op := range ops {
		if op.Complete > horizon {
			horizon = op.Complete
		}
	}
	horizon += int64(time.Second)
	clients := map[int]int{}
	var out []porcupine.Operation
	for _, op := range ops {
		if op.Outcome == Fail {
			continue
		}
		in, o, ok := conv(op)
		if !ok {
			continue
		}
		ret := op.Complete
		if op.Outcome == Unknown {
			ret = horizon
		}
		cid, seen := clients[op.Process]
		if !seen {
			cid = len(clients)
			clients[op.Process] = cid
		}
		out = append(out, porcupine.Operation{ClientId: cid, Input: in, Output: o, Call: op.Invoke, Return: ret, Metadata: op.ID})
	}
	return out
}

// checkLinearizable runs porcupine with a timeout. A timeout is a failure. When htmlPath is
// set the visualization (with the nemesis timeline as annotations) is written there.
func checkLinearizable(name string, model porcupine.Model, hist []porcupine.Operation, timeout time.Duration, htmlPath string, ann []porcupine.Annotation) Verdict {
	v := Verdict{Checker: name, Valid: true}
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, hist, timeout)
	took := time.Since(start).Round(time.Millisecond)
	parts := len(partitionByKey(hist))
	switch res {
	case porcupine.Ok:
		v.Summary = fmt.Sprintf("linearizable: %d operations in %d partitions, checked in %v", len(hist), parts, took)
	case porcupine.Illegal:
		v.Summary = fmt.Sprintf("NOT linearizable: %d operations in %d partitions, checked in %v", len(hist), parts, took)
		v.problem("porcupine found no linearization; the visualization shows the longest linearizable prefix and the operations that cannot follow it")
		// Name the partitions (uids, groups) that are not linearizable, and in each the
		// operation to look at first.
		lins := info.PartialLinearizationsOperations()
		for i, part := range partitionByKey(hist) {
			if i < len(lins) {
				if hint, bad := unplaced(model, part, lins[i]); bad {
					v.problem("partition %s (%d operations) is not linearizable; %s", part[0].Input.(keyed).key(), len(part), hint)
				}
			}
		}
	default:
		v.Summary = fmt.Sprintf("checker timed out after %v on %d operations (a timeout is a failure)", timeout, len(hist))
		v.problem("porcupine timed out")
	}
	if htmlPath != "" && len(hist) > 0 {
		info.AddAnnotations(ann)
		if err := porcupine.VisualizePath(model, info, htmlPath); err != nil {
			v.problem("write visualization: %v", err)
		} else {
			v.Files = append(v.Files, htmlPath)
		}
	}
	return v
}

// unplaced tells whether porcupine's longest partial linearization of a partition leaves
// operations out, and if so describes the one of them that returned first: usually the
// read that no order of the writes explains.
func unplaced(model porcupine.Model, part []porcupine.Operation, partials [][]porcupine.Operation) (string, bool) {
	var longest []porcupine.Operation
	for _, p := range partials {
		if len(p) > len(longest) {
			longest = p
		}
	}
	if len(longest) >= len(part) {
		return "", false
	}
	// Operations are told apart by client and times: the partial linearizations do not
	// carry the metadata along.
	type id struct {
		client    int
		call, ret int64
	}
	placed := map[id]bool{}
	for _, op := range longest {
		placed[id{op.ClientId, op.Call, op.Return}] = true
	}
	var first *porcupine.Operation
	for i := range part {
		op := &part[i]
		if !placed[id{op.ClientId, op.Call, op.Return}] && (first == nil || op.Return < first.Return) {
			first = op
		}
	}
	if first == nil {
		return fmt.Sprintf("%d of them linearized", len(longest)), true
	}
	return fmt.Sprintf("%d of them linearized; the first that cannot follow: op %v %s [%.3fs-%.3fs]",
		len(longest), first.Metadata, model.DescribeOperation(first.Input, first.Output),
		float64(first.Call)/1e9, float64(first.Return)/1e9), true
}
