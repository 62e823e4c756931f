package jepsen

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// setWorkload invites and kicks a few candidate users in a few groups and reads the member
// lists: each group's members (its owner aside) form a set.
type setWorkload struct {
	owner      string
	candidates []string
	groups     []string // groupIDs, filled by setup
}

func newSetWorkload() *setWorkload {
	return &setWorkload{owner: "set-owner", candidates: []string{"set-0", "set-1", "set-2", "set-3", "set-4"}}
}

func (w *setWorkload) name() string { return "set" }

func (w *setWorkload) setup(c *Cluster, deadline time.Time) error {
	for _, u := range append([]string{w.owner}, w.candidates...) {
		body := marshalBody(map[string]interface{}{"secret": adminSecret, "platform": 1, "uid": u, "name": u})
		if _, err := setupWrite(c, "auth/user_register", body, deadline, 1102); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2; i++ {
		body := marshalBody(map[string]interface{}{"operationID": opID("setg", rng), "groupName": fmt.Sprintf("set-%d", i),
			"memberList": []map[string]interface{}{{"uid": w.owner, "setRole": 1}}})
		r, err := setupWrite(c, "group/create_group", body, deadline)
		if err != nil {
			return err
		}
		var d struct {
			GroupID string `json:"groupID"`
		}
		if err := r.DecodeData(&d); err != nil || d.GroupID == "" {
			return fmt.Errorf("create_group: no groupID in %s", r.Raw)
		}
		w.groups = append(w.groups, d.GroupID)
	}
	return nil
}

func (w *setWorkload) run(ctx context.Context, id int, cl *client, h *History) {
	proc := h.NewProcess()
	for n := 0; n < maxClientOps && ctx.Err() == nil; n++ {
		g := w.groups[cl.rng.Intn(len(w.groups))]
		u := w.candidates[cl.rng.Intn(len(w.candidates))]
		var op Op
		switch cl.rng.Intn(3) {
		case 0:
			op = w.change(cl, h, "invite", g, u)
		case 1:
			op = w.change(cl, h, "kick", g, u)
		default:
			op = w.read(cl, h, g)
		}
		op.Process = proc
		h.Add(op)
		if op.Outcome == Unknown {
			proc = h.NewProcess()
		}
		pause(ctx, cl.rng, 20*time.Millisecond)
	}
}

func (w *setWorkload) change(cl *client, h *History, f, group, uid string) Op {
	op := Op{Workload: "set", F: f, Key: group, Value: uid, Invoke: h.Now()}
	route, body := "group/invite_user_to_group", map[string]interface{}{
		"operationID": opID("set", cl.rng), "groupID": group, "uidList": []string{uid}, "reason": "jepsen"}
	if f == "kick" {
		route, body = "group/kick_group", map[string]interface{}{
			"operationID": opID("set", cl.rng), "groupID": group, "uidListInfo": []map[string]string{{"userId": uid}}}
	}
	res := cl.write(route, marshalBody(body), 8*time.Second)
	op.Complete, op.Outcome, op.Node, op.Attempts, op.Err = h.Now(), res.Outcome, res.Node, res.Attempts, res.Err
	if res.Outcome == OK {
		var d []struct {
			UID    string `json:"uid"`
			Result int    `json:"result"`
		}
		if err := res.Resp.DecodeData(&d); err != nil || len(d) != 1 || d[0].UID != uid {
			op.Err = fmt.Sprintf("unexpected answer %s", res.Resp.Data)
			bad := 99 // a result no model state produces
			op.Result = &bad
		} else {
			op.Result = &d[0].Result
		}
	}
	return op
}

func (w *setWorkload) read(cl *client, h *History, group string) Op {
	op := Op{Workload: "set", F: "read", Key: group, Invoke: h.Now()}
	r, out, node, errText := cl.read("group/get_group_member_list", map[string]interface{}{"operationID": opID("setr", cl.rng), "groupID": group})
	op.Complete, op.Outcome, op.Node, op.Err = h.Now(), out, node, errText
	if out == OK {
		var d []struct {
			UID string `json:"uid"`
		}
		op.Members = []string{} // an empty set read is still a read
		if err := r.DecodeData(&d); err != nil {
			op.Members = []string{fmt.Sprintf("<undecodable: %s>", r.Data)}
		}
		for _, m := range d {
			if m.UID != w.owner {
				op.Members = append(op.Members, m.UID)
			}
		}
		sort.Strings(op.Members)
	}
	return op
}

func (w *setWorkload) final(c *Cluster, h *History, rng *rand.Rand) {
	finalReads(c, h, rng, w.groups, w.read)
}

func (w *setWorkload) check(ops []Op, timeout time.Duration, dir string, ann []porcupine.Annotation) Verdict {
	return CheckSet(ops, w.candidates, timeout, htmlIn(dir, "set.html"), ann)
}

// setInput is a set operation for porcupine; Bit is the candidate's bit (invite, kick).
type setInput struct {
	Group string
	F     string
	UID   string
	Bit   uint32
}

func (i setInput) key() string { return i.Group }

// setOutput is what a set operation returned: a per-uid result or the members read.
type setOutput struct {
	Result  int
	Members uint32
	Unknown bool
}

// foreignMember marks a member outside the candidates: no model state has it.
const foreignMember = 1 << 31

// SetModel is the model of one set of members per group, starting empty: invite answers 0
// and adds a uid that was not a member, -1 otherwise; kick answers 0 and removes a member,
// -1 otherwise; a read returns the set. An unknown invite or kick took effect if it
// happened.
var SetModel = porcupine.Model{
	Partition: partitionByKey,
	Init:      func() interface{} { return uint32(0) },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(uint32), input.(setInput), output.(setOutput)
		member := s&in.Bit != 0
		switch in.F {
		case "invite":
			want := -1
			if !member {
				want = 0
			}
			return out.Unknown || out.Result == want, s | in.Bit
		case "kick":
			want := -1
			if member {
				want = 0
			}
			return out.Unknown || out.Result == want, s &^ in.Bit
		default:
			return out.Members == s, s
		}
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(setInput), output.(setOutput)
		switch {
		case in.F == "read":
			return fmt.Sprintf("read(%.8s) -> %s", in.Group, describeMask(out.Members))
		case out.Unknown:
			return fmt.Sprintf("%s(%.8s, %s) -> ?", in.F, in.Group, in.UID)
		}
		return fmt.Sprintf("%s(%.8s, %s) -> %d", in.F, in.Group, in.UID, out.Result)
	},
	DescribeState: func(state interface{}) string { return describeMask(state.(uint32)) },
}

func describeMask(m uint32) string {
	var parts []string
	for m != 0 {
		b := bits.TrailingZeros32(m)
		m &^= 1 << b
		if b == 31 {
			parts = append(parts, "<foreign>")
		} else {
			parts = append(parts, fmt.Sprintf("set-%d", b))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// CheckSet checks the set operations of a history for linearizability, one partition per
// group; candidates are the uids that may be members, in bit order.
func CheckSet(ops []Op, candidates []string, timeout time.Duration, htmlPath string, ann []porcupine.Annotation) Verdict {
	bit := map[string]uint32{}
	for i, u := range candidates {
		bit[u] = 1 << i
	}
	hist := toPorcupine(ops, func(op Op) (interface{}, interface{}, bool) {
		in := setInput{Group: op.Key, F: op.F, UID: op.Value, Bit: bit[op.Value]}
		switch {
		case op.F != "read" && op.Outcome == Unknown:
			return in, setOutput{Unknown: true}, true
		case op.F != "read" && op.Result != nil:
			return in, setOutput{Result: *op.Result}, true
		case op.F == "read" && op.Outcome == OK:
			var m uint32
			for _, u := range op.Members {
				if b, ok := bit[u]; ok {
					m |= b
				} else {
					m |= foreignMember
				}
			}
			return in, setOutput{Members: m}, true
		}
		return nil, nil, false
	})
	return checkLinearizable("set", SetModel, hist, timeout, htmlPath, ann)
}
