package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/fsm"
)

func mustSend(t *testing.T, n *Node, from, to, text string) *fsm.Result {
	t.Helper()
	cmd, err := fsm.Encode(fsm.CmdSendMessage, nil, fsm.SendMessage{MsgID: text, SendID: from, RecvID: to,
		SessionType: fsm.SessionSingle, ContentType: 101, Content: []byte(`{"text":"` + text + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Propose(context.Background(), cmd)
	if err != nil || res.Err != "" {
		t.Fatalf("send %s: %v %+v", text, err, res)
	}
	return res
}

// storedSeqs is what node n holds of conversation conv after a linearizable read.
func storedSeqs(t *testing.T, n *Node, conv string) (minSeq uint64, count int) {
	t.Helper()
	if err := n.ConsistentRead(context.Background()); err != nil {
		t.Fatalf("read on %s: %v", n.ID(), err)
	}
	msgs, err := n.FSM().PullMessages(conv, 0, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	minSeq, err = n.FSM().MinSeq(conv)
	if err != nil {
		t.Fatal(err)
	}
	return minSeq, len(msgs)
}

func TestLeaderPrunesExpiredMessagesEverywhere(t *testing.T) {
	const retention = time.Second
	tc := mustClusterWith(t, 3, func(c *config.Config) { c.MessageRetention = config.Duration(retention) })
	follower := tc.nodes[0]
	if follower.IsLeader() {
		follower = tc.nodes[1]
	}
	mustRegister(t, follower, "a", nil)
	mustRegister(t, follower, "b", nil)
	for i := range 30 {
		mustSend(t, follower, "a", "b", fmt.Sprintf("m%d", i))
	}
	const conv = "si_a_b"
	if _, n := storedSeqs(t, follower, conv); n == 0 {
		t.Fatal("the messages are gone at once, want them kept for the retention")
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range tc.nodes {
		for {
			minSeq, count := storedSeqs(t, n, conv)
			if minSeq == 31 && count == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got minSeq %d and %d messages stored, want 31 and none after the retention", n.ID(), minSeq, count)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The conversation goes on at the next seq, and the new message is kept for its own
	// retention.
	if r := mustSend(t, tc.leader(), "b", "a", "after"); r.Seq != 31 {
		t.Fatalf("next send: got seq %d, want 31", r.Seq)
	}
	if minSeq, count := storedSeqs(t, follower, conv); minSeq != 31 || count != 1 {
		t.Fatalf("after the next send: got minSeq %d, %d stored; want 31, 1", minSeq, count)
	}
}

func TestNoRetentionKeepsMessages(t *testing.T) {
	tc := mustCluster(t, 1)
	n := tc.leader()
	mustRegister(t, n, "a", nil)
	mustRegister(t, n, "b", nil)
	mustSend(t, n, "a", "b", "kept")
	// Several retention intervals of the shortest retention pass: off means off.
	time.Sleep(300 * time.Millisecond)
	if minSeq, count := storedSeqs(t, n, "si_a_b"); count != 1 {
		t.Fatalf("got minSeq %d and %d messages, want the message kept", minSeq, count)
	}
}

func TestRetentionInterval(t *testing.T) {
	for _, tc := range []struct{ retention, want time.Duration }{
		{time.Second, 100 * time.Millisecond},
		{30 * time.Second, 3 * time.Second},
		{720 * time.Hour, time.Minute},
	} {
		if got := retentionInterval(tc.retention); got != tc.want {
			t.Errorf("retention %v: got %v, want %v", tc.retention, got, tc.want)
		}
	}
}

// The leader's idempotency prune proposes again while a command removes its whole limit, so
// a backlog larger than one command is worked off in one tick, and stops after
// maxPruneRounds commands. The default 24 h retention keeps the periodic duty from pruning
// anything meanwhile; the test passes its own cutoff and a small limit.
func TestIdempotencyPruneLoopsWhileACommandRemovesItsLimit(t *testing.T) {
	tc := mustCluster(t, 3)
	leader := tc.leader()
	const records = 2*maxPruneRounds + 5
	keys := make([][]byte, records)
	for i := range keys {
		keys[i] = key(fmt.Sprintf("op%d", i))
		if r := mustRegister(t, leader, fmt.Sprintf("u%d", i), keys[i]); r.Err != "" {
			t.Fatalf("register u%d: %s", i, r.Err)
		}
	}
	remembered := func(n *Node) (count int) {
		for _, k := range keys {
			if _, ok, err := n.FSM().IdempotentResult(k); err != nil {
				t.Fatal(err)
			} else if ok {
				count++
			}
		}
		return count
	}
	cutoff := time.Now().UnixNano()

	// A limit of 3: 2 × 50 + 5 = 105 records go in 35 full commands, and a 36th that
	// removes nothing ends the tick.
	if got := leader.pruneIdempotencyBefore(cutoff, 3); got != records {
		t.Fatalf("limit 3: pruned %d records, want all %d", got, records)
	}
	// A limit of 1 with new records: maxPruneRounds commands, then the tick's work ends.
	for i := range keys {
		keys[i] = key(fmt.Sprintf("again%d", i))
		mustRegister(t, leader, fmt.Sprintf("v%d", i), keys[i])
	}
	cutoff = time.Now().UnixNano()
	if got := leader.pruneIdempotencyBefore(cutoff, 1); got != maxPruneRounds {
		t.Fatalf("limit 1: pruned %d records, want %d (maxPruneRounds)", got, maxPruneRounds)
	}
	for _, n := range tc.nodes {
		if err := n.ConsistentRead(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Every node pruned the same records: the oldest maxPruneRounds of the second batch.
	waitFor(t, func() bool {
		for _, n := range tc.nodes {
			if remembered(n) != records-maxPruneRounds {
				return false
			}
		}
		return true
	})
	for _, n := range tc.nodes {
		for i, k := range keys {
			_, ok, _ := n.FSM().IdempotentResult(k)
			if ok != (i >= maxPruneRounds) {
				t.Fatalf("%s: record %d present=%v, want the oldest %d gone", n.ID(), i, ok, maxPruneRounds)
			}
		}
	}
}
