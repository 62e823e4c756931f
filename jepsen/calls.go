package jepsen

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"syscall"
	"time"

	"github.com/imnode/imnode/apiclient"
)

// errCodes of DESIGN.md §3 that the suite treats specially.
const (
	codeUnavailable    = 1801 // certainly not applied
	codeOutcomeUnknown = 1802 // may or may not be applied
	codeInternal       = 500
)

// classify sorts one attempt's answer into an outcome. A business error (any errCode other
// than 0, 500, 1801 and 1802) is an apply result that changed nothing, so it is a failure.
func classify(r *apiclient.Response, err error) Outcome {
	switch {
	case err != nil:
		if refused(err) {
			return Fail
		}
		return Unknown
	case r.ErrCode == 0 && r.HTTPStatus == 200:
		return OK
	case r.ErrCode == codeUnavailable:
		return Fail
	case r.ErrCode == codeOutcomeUnknown, r.ErrCode == codeInternal, r.HTTPStatus >= 500:
		return Unknown
	default:
		return Fail
	}
}

// refused tells whether a transport error proves the request was never sent.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused")
}

// describeErr is the short error text recorded in the history.
func describeErr(r *apiclient.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	if r.ErrCode != 0 {
		return fmt.Sprintf("%d %s", r.ErrCode, r.ErrMsg)
	}
	return ""
}

// maxClientOps bounds the operations of one client in one run, beside the run's duration.
const maxClientOps = 1_000_000

// client is one worker's connection to the cluster: it picks a node per attempt.
type client struct {
	c     *Cluster
	rng   *rand.Rand
	stale bool
	// node, when set, pins every call to one node (the final reads of each node).
	node *Node
	// timeout, when set, replaces the nodes' per-call timeout for reads.
	timeout time.Duration
}

// finalClient returns the client of the final reads on n: pinned to n, linearizable
// reads, a long timeout (a loaded machine must not turn a slow answer into a violation).
func finalClient(c *Cluster, n *Node, rng *rand.Rand) *client {
	return &client{c: c, rng: rng, node: n, timeout: 10 * time.Second}
}

// finalReads reads every key on every member once all faults are healed, as one process
// per member; a member that does not answer is left to the convergence check.
func finalReads(c *Cluster, h *History, rng *rand.Rand, keys []string, read func(*client, *History, string) Op) {
	for _, n := range c.Members() {
		cl := finalClient(c, n, rng)
		proc := h.NewProcess()
		for _, k := range keys {
			op := retryRead(func() Op { return read(cl, h, k) })
			op.Process = proc
			h.Add(op)
			if op.Outcome != OK {
				break
			}
		}
	}
}

// retryRead runs read up to three times until it is ok, a second apart, and returns the
// last outcome: only that one is recorded.
func retryRead(read func() Op) Op {
	op := read()
	for i := 0; i < 2 && op.Outcome != OK; i++ {
		time.Sleep(time.Second)
		op = read()
	}
	return op
}

// pick returns a random member (dead and paused ones included: clients keep talking to
// every node, as real ones would).
func (cl *client) pick() *Node {
	if cl.node != nil {
		return cl.node
	}
	ms := cl.c.Members()
	return ms[cl.rng.Intn(len(ms))]
}

// writeResult is the end of a write with retries.
type writeResult struct {
	Resp     *apiclient.Response
	Outcome  Outcome
	Node     string
	Attempts int
	Err      string
}

// write sends body (already marshalled, so every retry resends the identical bytes with
// the same operationID) until it is acknowledged, it fails for good, attempts run out or
// budget passes. Retries follow 1801, 1802, timeouts and refused connections, each to a
// random node. The result is unknown if any attempt's outcome was unknown and none was ok.
func (cl *client) write(route string, body []byte, budget time.Duration) writeResult {
	const maxAttempts = 8
	deadline := time.Now().Add(budget)
	var res writeResult
	sawUnknown := false
	for res.Attempts < maxAttempts {
		n := cl.pick()
		res.Attempts++
		r, err := n.client.Post(route, body)
		out := classify(r, err)
		res.Resp, res.Node, res.Err = r, n.ID, describeErr(r, err)
		if out == OK {
			res.Outcome = OK
			return res
		}
		if out == Unknown {
			sawUnknown = true
		}
		retriable := err != nil || r.ErrCode == codeUnavailable || r.ErrCode == codeOutcomeUnknown
		if !retriable && out == Fail {
			// A business error: with the same operationID, whichever attempt was applied
			// answered it, and it changed nothing.
			res.Outcome = Fail
			return res
		}
		if !retriable || time.Now().Add(300*time.Millisecond).After(deadline) {
			break
		}
		time.Sleep(time.Duration(50+cl.rng.Intn(250)) * time.Millisecond)
	}
	res.Outcome = Fail
	if sawUnknown {
		res.Outcome = Unknown
	}
	return res
}

// read sends a read once to a random node; a failed read tells nothing and is recorded as
// fail (or unknown after a timeout) and left out of the checks.
func (cl *client) read(route string, body interface{}) (*apiclient.Response, Outcome, string, string) {
	n := cl.pick()
	api := n.client
	if cl.stale {
		api = n.stale
	}
	if cl.timeout > 0 {
		cp := *api
		cp.Timeout = cl.timeout
		api = &cp
	}
	r, err := api.Post(route, body)
	out := classify(r, err)
	return r, out, n.ID, describeErr(r, err)
}

// opID returns a fresh operationID.
func opID(prefix string, rng *rand.Rand) string {
	return fmt.Sprintf("%s-%x", prefix, rng.Uint64())
}

// setupWrite retries a setup write on any running node until it is ok, answers one of the
// accepted errCodes, or deadline.
func setupWrite(c *Cluster, route string, body []byte, deadline time.Time, accept ...int) (*apiclient.Response, error) {
	var last string
	for i := 0; i < 10000 && time.Now().Before(deadline); i++ {
		for _, n := range c.Running() {
			r, err := n.client.Post(route, body)
			if err == nil && r.ErrCode == 0 {
				return r, nil
			}
			if err == nil {
				for _, a := range accept {
					if r.ErrCode == a {
						return r, nil
					}
				}
			}
			last = describeErr(r, err)
			if err == nil && r.ErrCode != codeUnavailable && r.ErrCode != codeOutcomeUnknown && r.ErrCode != codeInternal {
				return r, fmt.Errorf("%s: %s", route, last)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return nil, fmt.Errorf("%s: no success before the deadline: %s", route, last)
}
