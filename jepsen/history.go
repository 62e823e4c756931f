package jepsen

import (
	"encoding/json"
	"os"
	"sort"
	"sync"
	"time"
)

// Outcome is how a client operation ended.
type Outcome string

// Outcomes of an operation.
const (
	// OK: the server acknowledged it; it happened exactly once.
	OK Outcome = "ok"
	// Fail: it certainly did not happen (1801, a business error, a refused connection).
	Fail Outcome = "fail"
	// Unknown: it may or may not have happened (1802, a timeout, a broken connection).
	Unknown Outcome = "unknown"
)

// Msg is one message as the suite sees it: in an acknowledgement or in a read.
type Msg struct {
	Seq      uint64 `json:"seq"`
	MsgID    string `json:"msgID"`
	Text     string `json:"text,omitempty"`
	SendID   string `json:"sendID,omitempty"`
	SendTime int64  `json:"sendTime,omitempty"`
	// Revoked: a read answered the message revoked (its content replaced by the marker).
	Revoked bool `json:"revoked,omitempty"`
	// Gone marks a seq removed by message retention (see msgretention.go): a placeholder
	// with no content, never a message of its own.
	Gone bool `json:"gone,omitempty"`
}

// Op is one client operation: its invocation, its completion and what it returned.
// Times are nanoseconds since the start of the run. Fields that do not apply to the
// operation's workload stay empty.
type Op struct {
	ID       int     `json:"id"`
	Process  int     `json:"process"`
	Workload string  `json:"workload"`
	F        string  `json:"f"`
	Key      string  `json:"key,omitempty"`
	Value    string  `json:"value,omitempty"`
	Invoke   int64   `json:"invoke"`
	Complete int64   `json:"complete"`
	Outcome  Outcome `json:"outcome"`
	Node     string  `json:"node,omitempty"`
	Attempts int     `json:"attempts,omitempty"`
	Err      string  `json:"err,omitempty"`

	// Register: the value read. Set: the uid invited or kicked (Value), its per-uid result,
	// or the members read.
	Result  *int     `json:"result,omitempty"`
	Members []string `json:"members,omitempty"`

	// Message log: the acknowledgement of a send, or what a read returned.
	Conv   string            `json:"conv,omitempty"`
	Ack    *Msg              `json:"ack,omitempty"`
	Begin  uint64            `json:"begin,omitempty"`
	End    uint64            `json:"end,omitempty"`
	Msgs   []Msg             `json:"msgs,omitempty"`
	MaxSeq map[string]uint64 `json:"maxSeq,omitempty"`
	// MinSeq is the minSeq a pull answered: the seqs below it were removed by retention.
	MinSeq uint64 `json:"minSeq,omitempty"`
}

// History collects the operations of one run. It is safe for concurrent use.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
	procs int
}

// NewHistory returns an empty history whose clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now returns the history's clock: nanoseconds since it started.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// NewProcess returns a fresh process number. A client whose operation ended unknown takes
// a new one, as in Jepsen, since its old operation may still be pending forever.
func (h *History) NewProcess() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.procs++
	return h.procs - 1
}

// Add records a completed operation and returns it with its ID set.
func (h *History) Add(op Op) Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.ops)
	h.ops = append(h.ops, op)
	return op
}

// Ops returns a copy of the operations of one workload ("" for all), in invoke order.
func (h *History) Ops(workload string) []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Op
	for _, op := range h.ops {
		if workload == "" || op.Workload == workload {
			out = append(out, op)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Invoke < out[j].Invoke })
	return out
}

// Counts is the number of operations per outcome.
type Counts struct {
	OK      int `json:"ok"`
	Fail    int `json:"fail"`
	Unknown int `json:"unknown"`
}

// CountOps counts ops by workload and outcome.
func CountOps(ops []Op) map[string]Counts {
	out := map[string]Counts{}
	for _, op := range ops {
		c := out[op.Workload]
		switch op.Outcome {
		case OK:
			c.OK++
		case Fail:
			c.Fail++
		default:
			c.Unknown++
		}
		out[op.Workload] = c
	}
	return out
}

// WriteJSONL writes the history as events, one JSON object a line, in time order: an
// "invoke" event with what was called, and a completion event ("ok", "fail" or "unknown")
// with the whole operation and its result.
func WriteJSONL(path string, ops []Op) error {
	type event struct {
		Type     string `json:"type"`
		Time     int64  `json:"time"`
		ID       int    `json:"id"`
		Process  int    `json:"process"`
		Workload string `json:"workload,omitempty"`
		F        string `json:"f,omitempty"`
		Key      string `json:"key,omitempty"`
		Value    string `json:"value,omitempty"`
		Op       *Op    `json:"op,omitempty"`
	}
	evs := make([]event, 0, 2*len(ops))
	for i := range ops {
		op := &ops[i]
		evs = append(evs,
			event{Type: "invoke", Time: op.Invoke, ID: op.ID, Process: op.Process, Workload: op.Workload, F: op.F, Key: op.Key, Value: op.Value},
			event{Type: string(op.Outcome), Time: op.Complete, ID: op.ID, Process: op.Process, Op: op})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time < evs[j].Time })
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, e := range evs {
		if err := enc.Encode(e); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// outcomeCounts counts operations by outcome, for verdict summaries.
type outcomeCounts struct{ ok, unknown, fail int }

func (c *outcomeCounts) add(o Outcome) {
	switch o {
	case OK:
		c.ok++
	case Unknown:
		c.unknown++
	default:
		c.fail++
	}
}
