package jepsen

import (
	"context"
	"fmt"
	"math/rand"
	"time"

	"github.com/anishathalye/porcupine"
)

// registerWorkload writes and reads the name of a few users: each uid is a register.
type registerWorkload struct {
	keys []string
}

func newRegisterWorkload() *registerWorkload {
	return &registerWorkload{keys: []string{"reg-0", "reg-1", "reg-2"}}
}

func (w *registerWorkload) name() string { return "register" }

// initialValue is every register's value after setup.
const initialValue = "init"

func (w *registerWorkload) setup(c *Cluster, deadline time.Time) error {
	for _, k := range w.keys {
		body := marshalBody(map[string]interface{}{"secret": adminSecret, "platform": 1, "uid": k, "name": initialValue})
		if _, err := setupWrite(c, "auth/user_register", body, deadline, 1102); err != nil {
			return err
		}
	}
	return nil
}

func (w *registerWorkload) run(ctx context.Context, id int, cl *client, h *History) {
	proc := h.NewProcess()
	for n := 0; n < maxClientOps && ctx.Err() == nil; n++ {
		key := w.keys[cl.rng.Intn(len(w.keys))]
		var op Op
		if cl.rng.Intn(2) == 0 {
			op = w.write(cl, h, key, fmt.Sprintf("%d-%d", id, n))
		} else {
			op = w.read(cl, h, key)
		}
		op.Process = proc
		h.Add(op)
		if op.Outcome == Unknown {
			proc = h.NewProcess()
		}
		pause(ctx, cl.rng, 20*time.Millisecond)
	}
}

func (w *registerWorkload) write(cl *client, h *History, key, value string) Op {
	op := Op{Workload: "register", F: "write", Key: key, Value: value, Invoke: h.Now()}
	body := marshalBody(map[string]interface{}{"operationID": opID("reg", cl.rng), "uid": key, "name": value})
	res := cl.write("user/update_user_info", body, 8*time.Second)
	op.Complete, op.Outcome, op.Node, op.Attempts, op.Err = h.Now(), res.Outcome, res.Node, res.Attempts, res.Err
	return op
}

func (w *registerWorkload) read(cl *client, h *History, key string) Op {
	op := Op{Workload: "register", F: "read", Key: key, Invoke: h.Now()}
	r, out, node, errText := cl.read("user/get_user_info", map[string]interface{}{"operationID": opID("regr", cl.rng), "uidList": []string{key}})
	op.Complete, op.Outcome, op.Node, op.Err = h.Now(), out, node, errText
	if out == OK {
		var users []struct {
			UID  string `json:"uid"`
			Name string `json:"name"`
		}
		if err := r.DecodeData(&users); err != nil || len(users) != 1 || users[0].UID != key {
			// An acknowledged read that does not show the user is a value the model
			// never holds, so the checker reports it.
			op.Value = fmt.Sprintf("<missing: %s>", string(r.Data))
		} else {
			op.Value = users[0].Name
		}
	}
	return op
}

// final reads every register on every member once all faults are healed.
func (w *registerWorkload) final(c *Cluster, h *History, rng *rand.Rand) {
	finalReads(c, h, rng, w.keys, w.read)
}

func (w *registerWorkload) check(ops []Op, timeout time.Duration, dir string, ann []porcupine.Annotation) Verdict {
	return CheckRegister(ops, timeout, htmlIn(dir, "register.html"), ann)
}

// regInput is a register operation for porcupine.
type regInput struct {
	Key   string
	Write bool
	Value string
}

func (i regInput) key() string { return i.Key }

// RegisterModel is the model of one register per key, starting at "init": a write sets it,
// a read returns it.
var RegisterModel = porcupine.Model{
	Partition: partitionByKey,
	Init:      func() interface{} { return initialValue },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(regInput)
		if in.Write {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regInput)
		if in.Write {
			return fmt.Sprintf("write(%s, %q)", in.Key, in.Value)
		}
		return fmt.Sprintf("read(%s) -> %q", in.Key, output)
	},
	DescribeState: func(state interface{}) string { return fmt.Sprintf("%q", state) },
}

// CheckRegister checks the register operations of a history for linearizability, one
// partition per uid, and writes porcupine's visualization to htmlPath (if not empty).
func CheckRegister(ops []Op, timeout time.Duration, htmlPath string, ann []porcupine.Annotation) Verdict {
	hist := toPorcupine(ops, func(op Op) (interface{}, interface{}, bool) {
		switch {
		case op.F == "write":
			return regInput{Key: op.Key, Write: true, Value: op.Value}, "", true
		case op.Outcome == OK:
			return regInput{Key: op.Key}, op.Value, true
		}
		return nil, nil, false // a read without an answer tells nothing
	})
	return checkLinearizable("register", RegisterModel, hist, timeout, htmlPath, ann)
}

// pause sleeps up to max, or less if ctx ends.
func pause(ctx context.Context, rng *rand.Rand, max time.Duration) {
	t := time.NewTimer(time.Duration(rng.Int63n(int64(max) + 1)))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
