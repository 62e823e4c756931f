package jepsen

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/imnode/imnode/apiclient"
)

func intp(i int) *int { return &i }

// reg builds a register op on key "x".
func reg(f, value string, invoke, complete int64, out Outcome) Op {
	return Op{Workload: "register", F: f, Key: "x", Value: value, Invoke: invoke, Complete: complete, Outcome: out}
}

func TestCheckRegister(t *testing.T) {
	cases := []struct {
		name  string
		ops   []Op
		valid bool
	}{
		{"good", []Op{
			reg("write", "1", 0, 10, OK),
			reg("read", "1", 20, 30, OK),
			reg("write", "2", 40, 50, Unknown), // may have happened...
			reg("read", "2", 60, 70, OK),       // ...and did
			reg("read", "", 80, 90, Fail),      // a failed read tells nothing
		}, true},
		{"unknown write that never happened", []Op{
			reg("write", "1", 0, 10, OK),
			reg("write", "2", 20, 30, Unknown),
			reg("read", "1", 40, 50, OK),
		}, true},
		{"concurrent read may see either", []Op{
			reg("write", "1", 0, 100, OK),
			reg("read", initialValue, 10, 20, OK),
			reg("read", "1", 30, 40, OK),
		}, true},
		{"stale read", []Op{
			reg("write", "1", 0, 10, OK),
			reg("read", initialValue, 20, 30, OK),
		}, false},
		{"read goes back in time", []Op{
			reg("write", "1", 0, 10, OK),
			reg("write", "2", 20, 30, OK),
			reg("read", "2", 40, 50, OK),
			reg("read", "1", 60, 70, OK),
		}, false},
		{"failed write visible", []Op{
			reg("write", "3", 0, 10, Fail),
			reg("read", "3", 20, 30, OK),
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.ops {
				tc.ops[i].ID, tc.ops[i].Process = i, i
			}
			v := CheckRegister(tc.ops, 10*time.Second, "", nil)
			if v.Valid != tc.valid {
				t.Fatalf("got valid %v (%s), want %v", v.Valid, v.Summary, tc.valid)
			}
		})
	}
}

func TestCheckRegisterWritesVisualization(t *testing.T) {
	path := t.TempDir() + "/register.html"
	ops := []Op{reg("write", "1", 0, 10, OK), reg("read", initialValue, 20, 30, OK)}
	ann := annotations([]Event{{Fault: FaultPartitionLeader, Start: 5, End: 25, Detail: "isolate n1"}})
	v := CheckRegister(ops, 10*time.Second, path, ann)
	if v.Valid || len(v.Files) != 1 {
		t.Fatalf("got valid %v files %v, want an invalid verdict with the visualization", v.Valid, v.Files)
	}
}

func TestCheckerTimeoutIsFailure(t *testing.T) {
	slow := porcupine.Model{
		Init: func() interface{} { return 0 },
		StepContext: func(ctx context.Context, s, in, out interface{}) (bool, interface{}) {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			return true, s
		},
	}
	var hist []porcupine.Operation
	for i := 0; i < 20; i++ {
		hist = append(hist, porcupine.Operation{ClientId: i, Input: regInput{Key: "x"}, Call: 0, Return: 100})
	}
	v := checkLinearizable("slow", slow, hist, 20*time.Millisecond, "", nil)
	if v.Valid || !strings.Contains(v.Summary, "timed out") {
		t.Fatalf("got %v %q, want a failure that says it timed out", v.Valid, v.Summary)
	}
}

func setOp(f, uid string, result *int, members []string, invoke, complete int64, out Outcome) Op {
	return Op{Workload: "set", F: f, Key: "g", Value: uid, Result: result, Members: members, Invoke: invoke, Complete: complete, Outcome: out}
}

func TestCheckSet(t *testing.T) {
	cands := []string{"a", "b"}
	cases := []struct {
		name  string
		ops   []Op
		valid bool
	}{
		{"good", []Op{
			setOp("invite", "a", intp(0), nil, 0, 10, OK),
			setOp("invite", "a", intp(-1), nil, 20, 30, OK),
			setOp("read", "", nil, []string{"a"}, 40, 50, OK),
			setOp("invite", "b", nil, nil, 60, 70, Unknown),
			setOp("kick", "a", intp(0), nil, 80, 90, OK),
			setOp("read", "", nil, []string{"b"}, 100, 110, OK),
			setOp("kick", "a", intp(-1), nil, 120, 130, OK),
		}, true},
		{"lost member", []Op{
			setOp("invite", "a", intp(0), nil, 0, 10, OK),
			setOp("read", "", nil, []string{}, 20, 30, OK),
		}, false},
		{"applied twice", []Op{
			setOp("invite", "a", intp(0), nil, 0, 10, OK),
			setOp("invite", "a", intp(0), nil, 20, 30, OK),
		}, false},
		{"foreign member", []Op{
			setOp("read", "", nil, []string{"zz"}, 0, 10, OK),
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.ops {
				tc.ops[i].ID, tc.ops[i].Process = i, i
			}
			v := CheckSet(tc.ops, cands, 10*time.Second, "", nil)
			if v.Valid != tc.valid {
				t.Fatalf("got valid %v (%s), want %v", v.Valid, v.Summary, tc.valid)
			}
		})
	}
}

// msgHistory is a good message-log history: three acknowledged sends (m1, m2, m3) in
// conversation c, one unknown send that happened (m4) and one failed send (m5), read back
// identically on three nodes.
func msgHistory() []Op {
	send := func(tag string, seq uint64, invoke, complete int64, out Outcome) Op {
		op := Op{Workload: "msglog", F: "send", Key: "c", Value: tag, Invoke: invoke, Complete: complete, Outcome: out}
		if out == OK {
			op.Ack = &Msg{Seq: seq, MsgID: "id-" + tag, Text: tag, SendTime: int64(seq)}
			op.Conv = "c"
		}
		return op
	}
	ops := []Op{
		send("m1", 1, 0, 10, OK),
		send("m2", 2, 20, 30, OK),
		send("m3", 3, 25, 40, OK),
		send("m4", 0, 45, 50, Unknown),
		send("m5", 0, 45, 50, Fail),
		{Workload: "msglog", F: "pull", Key: "c", Begin: 1, End: 10, Invoke: 35, Complete: 36, Outcome: OK,
			Msgs: []Msg{{Seq: 1, MsgID: "id-m1", Text: "m1"}, {Seq: 2, MsgID: "id-m2", Text: "m2"}}},
		{Workload: "msglog", F: "newest", Key: "u", Invoke: 35, Complete: 36, Outcome: OK, MaxSeq: map[string]uint64{"c": 2}},
	}
	final := []Msg{{Seq: 1, MsgID: "id-m1", Text: "m1", SendTime: 1}, {Seq: 2, MsgID: "id-m2", Text: "m2", SendTime: 2},
		{Seq: 3, MsgID: "id-m3", Text: "m3", SendTime: 3}, {Seq: 4, MsgID: "id-m4", Text: "m4", SendTime: 4}}
	for _, n := range []string{"n1", "n2", "n3"} {
		ops = append(ops, Op{Workload: "msglog", F: "final", Key: "c", Node: n, Outcome: OK, End: 4, Msgs: append([]Msg(nil), final...)})
	}
	for i := range ops {
		ops[i].ID = i
	}
	return ops
}

// finals returns the final ops of h (pointers into h) by node.
func finals(h []Op) map[string]*Op {
	out := map[string]*Op{}
	for i := range h {
		if h[i].F == "final" {
			out[h[i].Node] = &h[i]
		}
	}
	return out
}

// everywhere applies f to the final sequence of every node.
func everywhere(h []Op, f func(op *Op)) []Op {
	for _, op := range finals(h) {
		f(op)
	}
	return h
}

func renumber(op *Op) {
	for i := range op.Msgs {
		op.Msgs[i].Seq = uint64(i + 1)
	}
	op.End = uint64(len(op.Msgs))
}

func TestCheckMsgLog(t *testing.T) {
	cases := []struct {
		name string
		h    []Op
		want string // a word of the expected problem; "" for valid
	}{
		{"good", msgHistory(), ""},
		{"unknown send absent", everywhere(msgHistory(), func(op *Op) { op.Msgs = op.Msgs[:3]; renumber(op) }), ""},
		{"lost", everywhere(msgHistory(), func(op *Op) {
			op.Msgs = append(op.Msgs[:1], op.Msgs[2:]...)
			renumber(op)
		}), "lost"},
		{"duplicate", everywhere(msgHistory(), func(op *Op) {
			m := op.Msgs[1]
			m.MsgID = "id-other"
			op.Msgs = append(op.Msgs, m)
			renumber(op)
		}), "twice"},
		{"gap", everywhere(msgHistory(), func(op *Op) { op.Msgs[3].Seq = 5; op.End = 5 }), "gap"},
		{"never sent", everywhere(msgHistory(), func(op *Op) {
			op.Msgs = append(op.Msgs, Msg{MsgID: "id-x", Text: "ghost", SendTime: 9})
			renumber(op)
		}), "never sent"},
		{"failed send present", everywhere(msgHistory(), func(op *Op) {
			op.Msgs = append(op.Msgs, Msg{MsgID: "id-m5", Text: "m5", SendTime: 9})
			renumber(op)
		}), "certainly failed"},
		{"reordered", everywhere(msgHistory(), func(op *Op) {
			op.Msgs[0], op.Msgs[1] = op.Msgs[1], op.Msgs[0]
			op.Msgs[0].SendTime, op.Msgs[1].SendTime = 1, 2
			renumber(op)
		}), "reordered"},
		{"nodes disagree", func() []Op {
			h := msgHistory()
			f := finals(h)["n3"]
			f.Msgs = f.Msgs[:3]
			renumber(f)
			return h
		}(), "disagree"},
		{"newest_seq lies", everywhere(msgHistory(), func(op *Op) { op.End = 7 }), "max seq"},
		{"stale pull", func() []Op {
			h := msgHistory()
			h[5].Msgs = h[5].Msgs[:1] // invoked at 35, after m2 (seq 2) was acknowledged at 30
			return h
		}(), "stale"},
		{"stale newest_seq", func() []Op {
			h := msgHistory()
			h[6].MaxSeq["c"] = 1
			return h
		}(), "stale"},
		{"read disagrees with final", func() []Op {
			h := msgHistory()
			h[5].Msgs[1].MsgID = "id-other"
			return h
		}(), "does not hold"},
		{"decreasing sendTime", everywhere(msgHistory(), func(op *Op) { op.Msgs[2].SendTime = 0 }), "sendTime"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkMsgLogVerdict(t, tc.h, tc.want) })
	}
}

func TestCheckConvergence(t *testing.T) {
	same := []Digest{{Node: "n1", AppliedIndex: 9, Digest: "ab"}, {Node: "n2", AppliedIndex: 9, Digest: "ab"}}
	if v := CheckConvergence(same); !v.Valid {
		t.Fatalf("got %q, want valid", v.Problems)
	}
	for name, ds := range map[string][]Digest{
		"digest":  {{Node: "n1", AppliedIndex: 9, Digest: "ab"}, {Node: "n2", AppliedIndex: 9, Digest: "cd"}},
		"index":   {{Node: "n1", AppliedIndex: 9, Digest: "ab"}, {Node: "n2", AppliedIndex: 8, Digest: "ab"}},
		"error":   {{Node: "n1", AppliedIndex: 9, Digest: "ab"}, {Node: "n2", Err: "timeout"}},
		"nothing": nil,
	} {
		if v := CheckConvergence(ds); v.Valid {
			t.Fatalf("%s: got valid, want a difference", name)
		}
	}
}

func TestClassify(t *testing.T) {
	// classify is what turns answers into ok / fail / unknown; the checkers rely on it.
	cases := []struct {
		code, status int
		want         Outcome
	}{
		{0, 200, OK}, {1801, 503, Fail}, {1802, 503, Unknown}, {500, 500, Unknown}, {1101, 200, Fail}, {1004, 200, Fail},
	}
	for _, tc := range cases {
		r := &apiclient.Response{ErrCode: tc.code, HTTPStatus: tc.status}
		if got := classify(r, nil); got != tc.want {
			t.Errorf("classify(%d, HTTP %d) = %s, want %s", tc.code, tc.status, got, tc.want)
		}
	}
}

func TestIllegalVerdictNamesTheOperation(t *testing.T) {
	ops := []Op{
		reg("write", "1", 0, 10, OK),
		reg("read", "1", 20, 30, OK),
		reg("read", initialValue, 40, 50, OK), // the stale one
	}
	for i := range ops {
		ops[i].ID, ops[i].Process = i, i
	}
	v := CheckRegister(ops, 10*time.Second, "", nil)
	got := strings.Join(v.Problems, "\n")
	if v.Valid || !strings.Contains(got, "partition x") || !strings.Contains(got, "op 2 read(x)") {
		t.Fatalf("got %q, want the partition x and op 2 named", v.Problems)
	}
}

// checkMsgLogVerdict runs the msglog checker on h: valid if want is empty, else a problem
// that contains want.
func checkMsgLogVerdict(t *testing.T, h []Op, want string) {
	t.Helper()
	v := CheckMsgLog(h)
	if want == "" {
		if !v.Valid {
			t.Fatalf("got problems %q, want valid", v.Problems)
		}
		return
	}
	if v.Valid {
		t.Fatalf("got valid (%s), want a problem with %q", v.Summary, want)
	}
	if !strings.Contains(strings.Join(v.Problems, "\n"), want) {
		t.Fatalf("got problems %q, want one with %q", v.Problems, want)
	}
}
