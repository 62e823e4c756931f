package jepsen

import (
	"fmt"
	"time"
)

// Message retention in the message-log check.
//
// With messageRetention set, the nodes remove old messages, and a pull answers minSeq: the
// seqs below it are gone. The checker then takes a conversation's final sequence to start
// with gone seqs, up to the highest minSeq any node answered (nodes read one after another
// while the leader keeps removing), as placeholders that every other check skips: a gone
// acknowledged message is not lost. What retention may remove is checked instead: a
// message is removed only once its log time is older than the retention, and its log time
// is after its send was invoked, so a seq gone at a node's final read must belong to a
// send invoked at least the retention before that read completed.

// retentionSlack absorbs the difference between the runner's monotonic clock and the
// nodes' wall clocks (one machine).
const retentionSlack = 500 * time.Millisecond

// CheckMsgLogRetention is CheckMsgLog for a cluster that runs with messageRetention.
func CheckMsgLogRetention(ops []Op, retention time.Duration) Verdict {
	return checkMsgLog(ops, retention)
}

// readStart is the seq a pull's answer must start at. It is Begin unless retention removed
// the seqs from Begin on: a node reads minSeq after the messages, so an answer may start
// anywhere from Begin to minSeq (the seqs it skips are below minSeq, gone), or, when it is
// empty, it says nothing after minSeq-1.
func readStart(r Op) uint64 {
	if len(r.Msgs) == 0 {
		return max(r.Begin, r.MinSeq)
	}
	if s := r.Msgs[0].Seq; s > r.Begin && s <= r.MinSeq {
		return s
	}
	return r.Begin
}

// goneAt reports whether seq of log is a placeholder of a seq removed by retention.
func goneAt(log []Msg, seq uint64) bool {
	return seq >= 1 && seq <= uint64(len(log)) && log[seq-1].Gone
}

// applyRetention returns ops with every final sequence starting with Gone placeholders up
// to the conversation's highest final minSeq, after checking that no node removed a
// message before its time. It copies what it changes.
func applyRetention(v *Verdict, ops []Op, retention time.Duration) []Op {
	acked := map[string][]*Op{}
	for i := range ops {
		if op := &ops[i]; op.F == "send" && op.Outcome == OK && op.Ack != nil {
			acked[op.Key] = append(acked[op.Key], op)
		}
	}
	highest := map[string]uint64{}
	for _, op := range ops {
		if op.F != "final" || op.Outcome != OK || op.MinSeq <= 1 {
			continue
		}
		highest[op.Key] = max(highest[op.Key], op.MinSeq)
		for _, s := range acked[op.Key] {
			if s.Ack.Seq < op.MinSeq && s.Invoke > op.Complete-int64(retention)+int64(retentionSlack) {
				v.problem("%s on %s: seq %d %q is gone (minSeq %d) %v after its send was invoked, before the retention of %v",
					op.Key, op.Node, s.Ack.Seq, s.Value, op.MinSeq, time.Duration(op.Complete-s.Invoke), retention)
			}
		}
	}
	out := append([]Op(nil), ops...)
	for i := range out {
		op := &out[i]
		g := highest[op.Key]
		if op.F != "final" || op.Outcome != OK || g <= 1 {
			continue
		}
		msgs := make([]Msg, 0, len(op.Msgs)+int(g))
		for seq := uint64(1); seq < g; seq++ {
			msgs = append(msgs, Msg{Seq: seq, Gone: true})
		}
		for _, m := range op.Msgs {
			if m.Seq >= g {
				msgs = append(msgs, m)
			}
		}
		op.Msgs = msgs
	}
	return out
}

// goneCount is the number of gone placeholders in the agreed sequences, for the summary.
func goneCount(logs map[string][]Msg) int {
	n := 0
	for _, l := range logs {
		for _, m := range l {
			if m.Gone {
				n++
			}
		}
	}
	return n
}

func retentionSummary(retention time.Duration, logs map[string][]Msg) string {
	if retention <= 0 {
		return ""
	}
	return fmt.Sprintf("; retention %v removed %d of them", retention, goneCount(logs))
}
