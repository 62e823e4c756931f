package node

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	dto "github.com/prometheus/client_model/go"

	"github.com/imnode/imnode/fsm"
)

// entryStats returns the entries the nodes proposed as leaders and the commands they
// carried (summed over the nodes: leadership may move under a loaded test machine).
func (tc *testCluster) entryStats() (entries uint64, commands float64) {
	tc.t.Helper()
	for _, n := range tc.nodes {
		var m dto.Metric
		if err := n.metrics.entryCommands.Write(&m); err != nil {
			tc.t.Fatal(err)
		}
		entries += m.GetHistogram().GetSampleCount()
		commands += m.GetHistogram().GetSampleSum()
	}
	return entries, commands
}

func (tc *testCluster) lastIndex() uint64 {
	var last uint64
	for _, n := range tc.nodes {
		last = max(last, n.raft.LastIndex())
	}
	return last
}

func (tc *testCluster) follower() *Node {
	l := tc.leader()
	for _, n := range tc.nodes {
		if n != l {
			return n
		}
	}
	return nil
}

func sendCmd(t *testing.T, key []byte, from, to, text string) []byte {
	t.Helper()
	cmd, err := fsm.Encode(fsm.CmdSendMessage, key, &fsm.SendMessage{MsgID: "m-" + text, SendID: from, RecvID: to,
		SessionType: fsm.SessionSingle, ContentType: 101, Content: []byte(`{"text":"` + text + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// proposeAll proposes every command at once on n and returns the results in order.
func proposeAll(t *testing.T, n *Node, cmds [][]byte) []*fsm.Result {
	t.Helper()
	out := make([]*fsm.Result, len(cmds))
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = n.Propose(context.Background(), cmd)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || out[i] == nil {
			t.Fatalf("propose %d on %s: %v (%+v)", i, n.ID(), err, out[i])
		}
	}
	return out
}

// Concurrent sends on the leader and through a follower are packed into fewer entries,
// each caller gets the result of its own command, and every node ends with the same state.
func TestConcurrentProposalsArePacked(t *testing.T) {
	tc := mustCluster(t, 3)
	l, f := tc.leader(), tc.follower()
	mustRegister(t, l, "a", key("a"))
	mustRegister(t, l, "b", key("b"))
	for _, n := range []*Node{l, f} {
		entries0, commands0 := tc.entryStats()
		before := tc.lastIndex()
		const writes = 300
		cmds := make([][]byte, writes)
		for i := range cmds {
			// Keyed, so that a write caught by a leadership change is retried, not lost.
			text := fmt.Sprintf("%s-%03d", n.ID(), i)
			cmds[i] = sendCmd(t, key(text), "a", "b", text)
		}
		res := proposeAll(t, n, cmds)
		for i, r := range res {
			if r.Err != "" || r.MsgID != fmt.Sprintf("m-%s-%03d", n.ID(), i) || r.Seq == 0 {
				t.Fatalf("via %s, write %d: got %+v, want its own result", n.ID(), i, r)
			}
		}
		seqs := map[uint64]bool{}
		for _, r := range res {
			seqs[r.Seq] = true
		}
		if len(seqs) != writes {
			t.Fatalf("via %s: %d distinct seqs for %d writes", n.ID(), len(seqs), writes)
		}
		entries, commands := tc.entryStats()
		entries, commands = entries-entries0, commands-commands0
		if commands < writes || entries >= writes || tc.lastIndex()-before >= writes {
			t.Fatalf("via %s: %v commands in %d entries (log +%d), want %d commands in fewer entries",
				n.ID(), commands, entries, tc.lastIndex()-before, writes)
		}
		t.Logf("via %s: %v commands in %d entries", n.ID(), commands, entries)
	}
	// Every proposed entry was seen passing through the leader's log store (or answered).
	for _, n := range tc.nodes {
		n.packer.mu.Lock()
		left, unapplied := len(n.packer.unstored), len(n.packer.unapplied)
		n.packer.mu.Unlock()
		if left != 0 || unapplied != 0 {
			t.Fatalf("%s: %d entries proposed and never seen stored, %d never answered", n.ID(), left, unapplied)
		}
	}
	// Every message is there, in seq order, on every node, and the replicas agree.
	var digest string
	for _, n := range tc.nodes {
		if err := n.ConsistentRead(context.Background()); err != nil {
			t.Fatal(err)
		}
		msgs, err := n.FSM().PullMessages("si_a_b", 1, 1000, 0)
		if err != nil || len(msgs) != 600 {
			t.Fatalf("%s: %d messages (%v), want 600", n.ID(), len(msgs), err)
		}
		n.FSM().Flush()
		d, err := n.FSM().Digest()
		if err != nil {
			t.Fatal(err)
		}
		if digest != "" && d != digest {
			t.Fatalf("%s: digest differs", n.ID())
		}
		digest = d
	}
}

// The same request proposed many times at once is applied once, in or across entries.
func TestPackedDuplicatesApplyOnce(t *testing.T) {
	tc := mustCluster(t, 3)
	l := tc.leader()
	mustRegister(t, l, "a", nil)
	mustRegister(t, l, "b", nil)
	var cmds [][]byte
	for i := 0; i < 100; i++ {
		cmds = append(cmds, sendCmd(t, key(fmt.Sprint("op", i%10)), "a", "b", fmt.Sprint(i%10)))
	}
	res := proposeAll(t, l, cmds)
	first := map[string]uint64{}
	for i, r := range res {
		op := fmt.Sprint(i % 10)
		if s, ok := first[op]; ok && s != r.Seq {
			t.Fatalf("op %s answered seq %d and %d", op, s, r.Seq)
		}
		first[op] = r.Seq
	}
	if err := l.ConsistentRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := l.FSM().PullMessages("si_a_b", 1, 1000, 0); len(msgs) != 10 {
		t.Fatalf("got %d messages, want 10", len(msgs))
	}
}

// A forwarded batch is packed into one entry; a bad command or a batch in it is refused
// alone, and the others apply.
func TestForwardedBatchIsPackedAndBadCommandsRefusedAlone(t *testing.T) {
	tc := mustCluster(t, 3)
	l := tc.leader()
	mustRegister(t, l, "a", nil)
	mustRegister(t, l, "b", nil)
	nested, err := fsm.EncodeBatch([][]byte{sendCmd(t, nil, "a", "b", "nested")})
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte{byte(fsm.CmdSendMessage), 0, 0xc1}
	cmds := [][]byte{sendCmd(t, nil, "a", "b", "1"), bad, sendCmd(t, nil, "a", "nobody", "2"), nested,
		sendCmd(t, nil, "b", "a", "3")}
	body, err := fsm.EncodeValue(cmds)
	if err != nil {
		t.Fatal(err)
	}
	before := l.raft.LastIndex()
	status, out := l.HandleInternal(PathPropose, body)
	var reps []internalReply
	if err := fsm.DecodeValue(out, &reps); status != 200 || err != nil || len(reps) != len(cmds) {
		t.Fatalf("got HTTP %d (%v), %d replies", status, err, len(reps))
	}
	if reps[1].Status != replyError || reps[3].Status != replyError {
		t.Fatalf("bad and nested: got %+v, %+v, want refused", reps[1], reps[3])
	}
	if reps[0].Status != replyOK || reps[0].Result.Seq != 1 || reps[4].Status != replyOK || reps[4].Result.Seq != 2 {
		t.Fatalf("good commands: got %+v, %+v", reps[0], reps[4])
	}
	if reps[2].Status != replyOK || reps[2].Result.Error() != fsm.ErrUserNotFound {
		t.Fatalf("the send to nobody: got %+v, want applied with ErrUserNotFound", reps[2])
	}
	if got := l.raft.LastIndex(); got != before+1 {
		t.Fatalf("log grew from %d to %d, want one packed entry", before, got)
	}
}

// The log store tells the packer which of its entries are written.
func TestStoreSignalForgetsStoredEntries(t *testing.T) {
	p := newPacker(&Node{})
	a, b := []byte("entry a"), []byte("entry b")
	p.unstored[&a[0]] = struct{}{}
	p.unstored[&b[0]] = struct{}{}
	s := storeSignal{LogStore: raft.NewInmemStore(), p: p}
	if err := s.StoreLogs([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: a}, {Index: 2, Type: raft.LogNoop}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.unstored[&a[0]]; ok || len(p.unstored) != 1 {
		t.Fatalf("after storing a: %d unstored, want only b", len(p.unstored))
	}
	select {
	case <-p.wake:
	default:
		t.Fatalf("the sender was not woken")
	}
	if err := s.StoreLog(&raft.Log{Index: 3, Type: raft.LogCommand, Data: b}); err != nil {
		t.Fatal(err)
	}
	if len(p.unstored) != 0 {
		t.Fatalf("after storing b: %d unstored", len(p.unstored))
	}
}

// The next entry waits for the previous one to be applied, or only to be stored once
// packEarly writes are queued; forget (the replies came back) frees it either way.
func TestPackerWaitsForTheRoundUnlessAnEntryIsFull(t *testing.T) {
	p := newPacker(&Node{})
	a := []byte("entry a")
	p.inFlight(a)
	p.queue = make([]*packed, 1)
	if !p.busy() {
		t.Fatalf("a write proposed while a is not stored")
	}
	s := storeSignal{LogStore: raft.NewInmemStore(), p: p}
	if err := s.StoreLog(&raft.Log{Index: 1, Type: raft.LogCommand, Data: a}); err != nil {
		t.Fatal(err)
	}
	if !p.busy() {
		t.Fatalf("one queued write proposed while a is stored but not applied")
	}
	p.queue = make([]*packed, packEarly)
	if p.busy() {
		t.Fatalf("%d queued writes wait for a stored entry to be applied", packEarly)
	}
	b := []byte("entry b")
	p.inFlight(b)
	if !p.busy() {
		t.Fatalf("%d queued writes proposed while b is not stored", packEarly)
	}
	p.forget(a)
	p.forget(b)
	p.queue = p.queue[:1]
	if p.busy() || len(p.unstored) != 0 || len(p.unapplied) != 0 {
		t.Fatalf("after both were applied: busy, %d unstored, %d unapplied", len(p.unstored), len(p.unapplied))
	}
}

// With raft.noCommandPacking every write is an entry of its own (for upgrades from nodes
// that do not know CmdBatch).
func TestNoCommandPacking(t *testing.T) {
	tc := mustCluster(t, 3)
	for _, n := range tc.nodes {
		n.cfg.Raft.NoCommandPacking = true
	}
	l := tc.leader()
	mustRegister(t, l, "a", key("a"))
	mustRegister(t, l, "b", key("b"))
	entries0, commands0 := tc.entryStats()
	var cmds [][]byte
	for i := 0; i < 100; i++ {
		text := fmt.Sprint("np", i)
		cmds = append(cmds, sendCmd(t, key(text), "a", "b", text))
	}
	for i, r := range proposeAll(t, tc.follower(), cmds) {
		if r.Err != "" || r.MsgID != fmt.Sprint("m-np", i) {
			t.Fatalf("write %d: got %+v", i, r)
		}
	}
	entries, commands := tc.entryStats()
	if entries-entries0 != uint64(commands-commands0) || commands-commands0 < 100 {
		t.Fatalf("%v commands in %d entries, want one entry each", commands-commands0, entries-entries0)
	}
}
