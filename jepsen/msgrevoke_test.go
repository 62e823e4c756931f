package jepsen

import (
	"testing"
)

// revokeHistory is msgHistory with m2 (seq 2) revoked by an acknowledged revoke that
// completed at 60, and every node's final read showing it revoked.
func revokeHistory() []Op {
	h := msgHistory()
	h = append(h, Op{Workload: "msglog", F: "revoke", Key: "c", Ack: &Msg{Seq: 2, MsgID: "id-m2"}, Invoke: 55, Complete: 60, Outcome: OK})
	for _, f := range finals(h) {
		f.Msgs[1].Revoked, f.Msgs[1].Text = true, ""
	}
	for i := range h {
		h[i].ID = i
	}
	return h
}

func TestCheckMsgLogRevokes(t *testing.T) {
	cases := []struct {
		name string
		h    []Op
		want string // a word of the expected problem; "" for valid
	}{
		{"revoked keeps seq and msgID", revokeHistory(), ""},
		{"unknown revoke that landed", func() []Op {
			h := revokeHistory()
			h[len(h)-1].Outcome = Unknown
			return h
		}(), ""},
		{"unknown revoke that did not land", everywhere(func() []Op {
			h := revokeHistory()
			h[len(h)-1].Outcome = Unknown
			return h
		}(), func(op *Op) { op.Msgs[1].Revoked, op.Msgs[1].Text = false, "m2" }), ""},
		{"acknowledged revoke lost", everywhere(revokeHistory(), func(op *Op) { op.Msgs[1].Revoked, op.Msgs[1].Text = false, "m2" }), "after revoke"},
		{"revoked without a revoke", everywhere(revokeHistory(), func(op *Op) { op.Msgs[0].Revoked, op.Msgs[0].Text = true, "" }), "no revoke"},
		{"revoke changed the msgID", everywhere(revokeHistory(), func(op *Op) { op.Msgs[1].MsgID = "id-x" }), "no acknowledged send"},
		{"revoked on one node only", func() []Op {
			h := revokeHistory()
			h[len(h)-1].Outcome = Unknown
			f := finals(h)["n2"]
			f.Msgs[1].Revoked, f.Msgs[1].Text = false, "m2"
			return h
		}(), "disagree"},
		{"read after the revoke sees the content", func() []Op {
			h := revokeHistory()
			return append(h, Op{ID: len(h), Workload: "msglog", F: "pull", Key: "c", Begin: 2, End: 2, Invoke: 70, Complete: 71, Outcome: OK,
				Msgs: []Msg{{Seq: 2, MsgID: "id-m2", Text: "m2"}}})
		}(), "stale"},
		{"a read saw a revoke the finals lost", func() []Op {
			h := revokeHistory()
			h[len(h)-1].Outcome = Unknown
			h = append(h, Op{ID: len(h), Workload: "msglog", F: "pull", Key: "c", Begin: 2, End: 2, Invoke: 70, Complete: 71, Outcome: OK,
				Msgs: []Msg{{Seq: 2, MsgID: "id-m2", Revoked: true}}})
			return everywhere(h, func(op *Op) { op.Msgs[1].Revoked, op.Msgs[1].Text = false, "m2" })
		}(), "lost"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkMsgLogVerdict(t, tc.h, tc.want) })
	}
	// The checker does not change the history it is given.
	h := revokeHistory()
	CheckMsgLog(h)
	if f := finals(h)["n1"]; f.Msgs[1].Text != "" {
		t.Fatalf("the checker wrote %q into the history", f.Msgs[1].Text)
	}
}
