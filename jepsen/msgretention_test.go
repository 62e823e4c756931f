package jepsen

import (
	"strings"
	"testing"
	"time"
)

// retentionHistory is msgHistory with sends a second apart and final reads at 20 s, on
// nodes that removed the first seqs: n1 below 3, n2 below 2, n3 none yet.
func retentionHistory() []Op {
	h := msgHistory()
	for i := range h {
		op := &h[i]
		switch op.F {
		case "send", "pull", "newest":
			op.Invoke *= int64(100 * time.Millisecond)
			op.Complete *= int64(100 * time.Millisecond)
		case "final":
			op.Invoke, op.Complete = int64(19*time.Second), int64(20*time.Second)
			switch op.Node {
			case "n1":
				op.MinSeq, op.Msgs = 3, op.Msgs[2:]
			case "n2":
				op.MinSeq, op.Msgs = 2, op.Msgs[1:]
			}
		}
	}
	return h
}

func TestCheckMsgLogRetention(t *testing.T) {
	cases := []struct {
		name      string
		h         []Op
		retention time.Duration
		want      string // a word of the expected problem; "" for valid
	}{
		{"gone, not lost", retentionHistory(), 10 * time.Second, ""},
		{"without retention it is lost", retentionHistory(), 0, "lost"},
		{"removed before its time", retentionHistory(), 19 * time.Second, "before the retention"},
		{"a run read before the removal", append(retentionHistory(), Op{Workload: "msglog", F: "pull", Key: "c", Begin: 1, End: 9,
			Invoke: int64(5 * time.Second), Complete: int64(5 * time.Second), Outcome: OK,
			Msgs: []Msg{{Seq: 1, MsgID: "id-m1", Text: "m1"}, {Seq: 2, MsgID: "id-m2", Text: "m2"}, {Seq: 3, MsgID: "id-m3", Text: "m3"}}}),
			10 * time.Second, ""},
		{"a run read from minSeq", append(retentionHistory(), Op{Workload: "msglog", F: "pull", Key: "c", Begin: 1, End: 9, MinSeq: 3,
			Invoke: int64(15 * time.Second), Complete: int64(15 * time.Second), Outcome: OK,
			Msgs: []Msg{{Seq: 3, MsgID: "id-m3", Text: "m3"}, {Seq: 4, MsgID: "id-m4", Text: "m4"}}}),
			10 * time.Second, ""},
		{"a run read from below the minSeq read after it", append(retentionHistory(), Op{Workload: "msglog", F: "pull", Key: "c", Begin: 1, End: 9, MinSeq: 3,
			Invoke: int64(15 * time.Second), Complete: int64(15 * time.Second), Outcome: OK,
			Msgs: []Msg{{Seq: 2, MsgID: "id-m2", Text: "m2"}, {Seq: 3, MsgID: "id-m3", Text: "m3"}, {Seq: 4, MsgID: "id-m4", Text: "m4"}}}),
			10 * time.Second, ""},
		{"an empty run read of gone seqs", append(retentionHistory(), Op{Workload: "msglog", F: "pull", Key: "c", Begin: 1, End: 2, MinSeq: 3,
			Invoke: int64(15 * time.Second), Complete: int64(15 * time.Second), Outcome: OK, Msgs: []Msg{}}),
			10 * time.Second, ""},
		{"an empty run read that misses a kept seq", append(retentionHistory(), Op{Workload: "msglog", F: "pull", Key: "c", Begin: 3, End: 9, MinSeq: 3,
			Invoke: int64(15 * time.Second), Complete: int64(15 * time.Second), Outcome: OK, Msgs: []Msg{}}),
			10 * time.Second, "stale"},
		{"a run read with a hole after minSeq", append(retentionHistory(), Op{Workload: "msglog", F: "pull", Key: "c", Begin: 1, End: 9, MinSeq: 2,
			Invoke: int64(15 * time.Second), Complete: int64(15 * time.Second), Outcome: OK,
			Msgs: []Msg{{Seq: 3, MsgID: "id-m3", Text: "m3"}}}),
			10 * time.Second, "position 0 holds seq 3"},
		{"a gap after the gone seqs", everywhere(retentionHistory(), func(op *Op) {
			if op.Node == "n1" {
				op.Msgs = op.Msgs[1:] // minSeq 3 but the pull starts at 4
			}
		}), 10 * time.Second, "gap"},
		{"nodes disagree after the gone seqs", everywhere(retentionHistory(), func(op *Op) {
			if op.Node == "n3" {
				op.Msgs[3].Text = "changed"
			}
		}), 10 * time.Second, "disagree"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := CheckMsgLogRetention(tc.h, tc.retention)
			if tc.want == "" {
				if !v.Valid {
					t.Fatalf("got problems %q, want valid", v.Problems)
				}
				if tc.retention > 0 && !strings.Contains(v.Summary, "removed 2") {
					t.Fatalf("summary %q, want it to count 2 gone", v.Summary)
				}
				return
			}
			if v.Valid {
				t.Fatalf("got valid (%s), want a problem with %q", v.Summary, tc.want)
			}
			if !strings.Contains(strings.Join(v.Problems, "\n"), tc.want) {
				t.Fatalf("got problems %q, want one with %q", v.Problems, tc.want)
			}
		})
	}
}
