package httpapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/imnode/imnode/fsm"
)

// TestPullAnswersRetainedSeqsAsGone: after retention removed a conversation's first
// messages, pull answers the rest and minSeq, and newest_seq shows minSeq too; a user's own
// token sees the same.
func TestPullAnswersRetainedSeqsAsGone(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.register("bob", "alice")
	for i := range 5 {
		e.send(e.admin, "alice", "bob", 1, fmt.Sprintf("old-%d", i))
	}
	time.Sleep(20 * time.Millisecond)
	// The fake backend stamps entries with the wall clock: a 10 ms retention now removes
	// everything sent before the sleep.
	cmd, err := fsm.Encode(fsm.CmdPruneMessages, nil, fsm.PruneMessages{Retention: int64(10 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.b.apply(cmd); err != nil || res.Pruned != 5 {
		t.Fatalf("prune: got %+v, %v; want 5 pruned", res, err)
	}
	e.send(e.admin, "bob", "alice", 1, "new")

	for _, tok := range []string{e.admin, alice} {
		r := e.ok("msg/pull_msg_by_seq", tok, map[string]any{"conversationID": "si_alice_bob", "beginSeq": 1, "endSeq": 10})
		var msgs []fsm.MessageView
		r.data(t, &msgs)
		var minSeq uint64
		r.field(t, "minSeq", &minSeq)
		if len(msgs) != 1 || msgs[0].Seq != 6 || minSeq != 6 {
			t.Fatalf("pull: got %s, want seq 6 only and minSeq 6", r.Raw)
		}
		r = e.ok("msg/pull_msg_by_seq", tok, map[string]any{"conversationID": "si_alice_bob", "beginSeq": 2, "endSeq": 4})
		if string(r.Data) != "[]" {
			t.Fatalf("pull of gone seqs: got %s, want [] (with minSeq)", r.Raw)
		}
		r.field(t, "minSeq", &minSeq)
		if minSeq != 6 {
			t.Fatalf("pull of gone seqs: got minSeq %d, want 6", minSeq)
		}
		r = e.ok("msg/newest_seq", tok, map[string]any{"uid": "alice"})
		if want := `{"conversations":[{"conversationID":"si_alice_bob","maxSeq":6,"hasReadSeq":0,"minSeq":6}]}`; string(r.Data) != want {
			t.Fatalf("newest_seq: got %s, want %s", r.Data, want)
		}
	}
}
