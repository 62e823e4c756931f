package gateway

import (
	"testing"
	"time"

	"github.com/imnode/imnode/fsm"
)

// TestResumeSkipsRetainedMessages: a resume from before what retention removed replays the
// messages still stored, in order, and stays open (the removed seqs are gone, not a hole).
func TestResumeSkipsRetainedMessages(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("a", "b")
	for range 20 {
		h.send("a", "b", fsm.SessionSingle, "old")
	}
	time.Sleep(5 * time.Millisecond)
	if r := h.apply(fsm.CmdPruneMessages, fsm.PruneMessages{Retention: int64(time.Millisecond)}); r.Pruned != 20 {
		t.Fatalf("prune: got %d, want 20", r.Pruned)
	}
	h.send("a", "b", fsm.SessionSingle, "kept")
	conv := fsm.SingleConversationID("a", "b")
	for i, from := range []uint64{0, 3} {
		c := h.mustDial("tok:b")
		c.sendJSON(map[string]any{"type": "resume", "seqs": map[string]uint64{conv: from}})
		// The first round's live message (22) is stored for the second round's replay.
		want := 21 + uint64(i)
		got := c.msgs(i+1, wait)
		for j, f := range got {
			if f.Seq != 21+uint64(j) {
				t.Fatalf("resume from %d: got seq %d at %d, want %d", from, f.Seq, j, 21+j)
			}
		}
		h.send("b", "a", fsm.SessionSingle, "live")
		if got := c.msgs(1, wait); got[0].Seq != want+1 {
			t.Fatalf("resume from %d: live got seq %d, want %d", from, got[0].Seq, want+1)
		}
		_ = c.ws.Close()
	}
}
