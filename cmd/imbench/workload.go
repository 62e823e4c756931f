package main

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

// opKind is one kind of request the load generator sends. Each has its own latency
// histogram, so a mix reports sends and reads apart.
type opKind int

const (
	kindSendSingle opKind = iota
	kindSendGroup
	kindReadUser
	kindPull
	numKinds
)

var kindNames = [numKinds]string{"send_single", "send_group", "read_user", "pull"}

var kindPaths = [numKinds]string{"/manager/send_msg", "/manager/send_msg", "/user/get_user_info", "/msg/pull_msg_by_seq"}

func (k opKind) String() string { return kindNames[k] }

// isWrite reports whether the kind goes through raft (a send), so its answer must carry a msgID.
func (k opKind) isWrite() bool { return k == kindSendSingle || k == kindSendGroup }

func kindByName(s string) (opKind, bool) {
	for i, n := range kindNames {
		if n == s {
			return opKind(i), true
		}
	}
	return 0, false
}

// opGen produces one worker's requests. It is owned by one worker goroutine, so it keeps
// its own counters and buffers and needs no locking.
type opGen interface {
	// next appends the body of the worker's next request to buf[:0] and returns its kind.
	// The body must carry an operationID no other request of this process carries.
	next(buf []byte) (opKind, []byte)
}

// workload is what -workload selects. All of today's workloads are closed-loop HTTP
// request/response ones: they give newGen, and the engine runs C workers over it. A
// workload that is not request/response (the planned WebSocket ones: idle connected
// clients per node, send→delivery latency) gives run instead and fills the same Result
// from the same fixture, so flags, sweeps, the summary and the JSON stay as they are.
type workload struct {
	name string
	help string
	// needsGroup: the fixture must hold a group of -group-size members.
	needsGroup bool
	// newGen returns the generator of worker w; nil when run is set.
	newGen func(f *fixture, o *options, w int) opGen
	// run drives a non-HTTP workload; nil for request/response workloads.
	run func(e *env) (*Result, error)
}

// workloads is the -workload registry.
var workloads = map[string]*workload{
	"send_single": {name: "send_single", help: "manager/send_msg, sessionType 1, over -convs conversations",
		newGen: func(f *fixture, o *options, w int) opGen { return newMixGen(f, o, w, single(kindSendSingle)) }},
	"send_group": {name: "send_group", help: "manager/send_msg, sessionType 2, to the -group-size group", needsGroup: true,
		newGen: func(f *fixture, o *options, w int) opGen { return newMixGen(f, o, w, single(kindSendGroup)) }},
	"read_user": {name: "read_user", help: "user/get_user_info of -read-batch users (linearizable unless -stale)",
		newGen: func(f *fixture, o *options, w int) opGen { return newMixGen(f, o, w, single(kindReadUser)) }},
	"pull": {name: "pull", help: "msg/pull_msg_by_seq of seq 1..-pull-n in one conversation",
		newGen: func(f *fixture, o *options, w int) opGen { return newMixGen(f, o, w, single(kindPull)) }},
	"mix": {name: "mix", help: "weighted mix of the other kinds, -mix send_single=50,read_user=40,pull=10",
		newGen: func(f *fixture, o *options, w int) opGen { return newMixGen(f, o, w, o.mixWeights) }},
}

// plannedWorkloads are names reserved for client delivery: they will be workloads with a
// run func. -workload rejects them, before any setup, with this description.
var plannedWorkloads = map[string]string{
	"ws_idle":     "connected idle WebSocket clients per node",
	"ws_delivery": "send→delivery latency over WebSocket",
}

// workloadNames returns the registry's names, sorted, for usage text.
func workloadNames() string {
	names := make([]string, 0, len(workloads))
	for n := range workloads {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "|")
}

// workloadHelp lists the workloads with what each sends, for the -workload usage.
func workloadHelp() string {
	var b strings.Builder
	for _, n := range strings.Split(workloadNames(), "|") {
		fmt.Fprintf(&b, "\n  %-11s %s", n, workloads[n].help)
	}
	return b.String()
}

// needsGroup reports whether workload name sends to the -group-size group.
func (o *options) needsGroup(name string) bool {
	return workloads[name].needsGroup || (name == "mix" && o.mixWeights[kindSendGroup] > 0)
}

func single(k opKind) [numKinds]int {
	var w [numKinds]int
	w[k] = 1
	return w
}

// parseMix parses "send_single=50,read_user=40,pull=10" into weights by kind.
func parseMix(s string) ([numKinds]int, error) {
	var w [numKinds]int
	total := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, num, ok := strings.Cut(part, "=")
		if !ok {
			return w, fmt.Errorf("-mix: %q is not kind=weight", part)
		}
		k, ok := kindByName(strings.TrimSpace(name))
		if !ok {
			return w, fmt.Errorf("-mix: unknown kind %q (want one of %s)", name, strings.Join(kindNames[:], ", "))
		}
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil || n < 0 || n > 1000 {
			return w, fmt.Errorf("-mix: weight of %s must be an integer 0..1000, got %q", name, num)
		}
		w[k] += n
		total += n
	}
	if total == 0 {
		return w, fmt.Errorf("-mix: weights add up to zero")
	}
	return w, nil
}

// mixGen generates every kind from pre-built body pieces: the per-op work is appending the
// operationID and a suffix prepared at start, so the generator stays out of the profile.
type mixGen struct {
	f       *fixture
	o       *options
	w       int
	n       uint64 // ops generated by this worker
	opidPfx []byte // `{"operationID":"<run>-<worker>-`
	rng     *rand.Rand
	weights [numKinds]int
	total   int
	only    opKind // the kind when a single one has weight, else -1
	text    string
}

func newMixGen(f *fixture, o *options, w int, weights [numKinds]int) *mixGen {
	g := &mixGen{f: f, o: o, w: w, weights: weights, text: f.text}
	g.opidPfx = fmt.Appendf(nil, `{"operationID":"%s-%d-`, f.runID, w)
	g.rng = rand.New(rand.NewPCG(uint64(w)+1, seedOf(f.runID)))
	g.only = -1
	for k, x := range weights {
		g.total += x
		if x > 0 {
			if g.total == x {
				g.only = opKind(k)
			} else {
				g.only = -1
			}
		}
	}
	return g
}

// seedOf hashes the run ID into a seed, so two runs do not repeat one mix sequence.
func seedOf(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func (g *mixGen) pick() opKind {
	if g.only >= 0 {
		return g.only
	}
	x := g.rng.IntN(g.total)
	for k, wt := range g.weights {
		if x < wt {
			return opKind(k)
		}
		x -= wt
	}
	return kindSendSingle
}

func (g *mixGen) next(buf []byte) (opKind, []byte) {
	k := g.pick()
	j := g.n
	g.n++
	f := g.f
	buf = append(buf[:0], g.opidPfx...)
	buf = strconv.AppendUint(buf, j, 10)
	switch k {
	case kindSendSingle:
		c := f.convs[g.conv(j)]
		from, to := c.a, c.b
		if (j+uint64(g.w))&1 == 1 {
			from, to = to, from
		}
		buf = appendSend(buf, from, to, 1, g.text)
	case kindSendGroup:
		m := f.group.members
		buf = appendSend(buf, m[g.spread(j, len(m))], f.group.id, 2, g.text)
	case kindReadUser:
		buf = append(buf, `","uidList":[`...)
		for i := 0; i < g.o.readBatch; i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '"')
			buf = append(buf, f.users[g.spread(j*uint64(g.o.readBatch)+uint64(i), len(f.users))]...)
			buf = append(buf, '"')
		}
		buf = append(buf, "]}"...)
	case kindPull:
		c := f.convs[g.conv(j)]
		buf = append(buf, `","conversationID":"`...)
		buf = append(buf, c.id...)
		buf = append(buf, `","beginSeq":1,"endSeq":`...)
		buf = strconv.AppendInt(buf, int64(g.o.pullN), 10)
		buf = append(buf, '}')
	}
	return k, buf
}

// spread maps the worker's j-th op onto [0, n): workers start at evenly spaced offsets and
// walk forward, so C workers cover all n targets and rarely hit the same one at once.
func (g *mixGen) spread(j uint64, n int) int {
	start := uint64(g.w) * uint64(n) / uint64(max(g.o.concurrency, 1))
	return int((start + j) % uint64(n))
}

func appendSend(buf []byte, from, to string, sessionType int, text string) []byte {
	buf = append(buf, `","sendID":"`...)
	buf = append(buf, from...)
	buf = append(buf, `","recvID":"`...)
	buf = append(buf, to...)
	buf = append(buf, `","contentType":101,"sessionType":`...)
	buf = strconv.AppendInt(buf, int64(sessionType), 10)
	buf = append(buf, `,"content":{"text":"`...)
	buf = append(buf, text...)
	return append(buf, `"}}`...)
}
