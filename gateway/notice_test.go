package gateway

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/imnode/imnode/fsm"
)

// noticeFields decodes a notice frame's members beside the ones frame has.
func noticeFields(t *testing.T, c *client, typ string) map[string]any {
	t.Helper()
	for {
		f := c.mustNext(wait)
		if f.Type == "msg" {
			continue
		}
		if f.Type != typ {
			t.Fatalf("got a %q frame %+v, want %q", f.Type, f, typ)
		}
		var m map[string]any
		if err := json.Unmarshal(f.raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func TestRevokeAndReadReceiptFrames(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("alice", "bob", "carol", "dave")
	h.group("g1", "alice", "carol")
	conns := map[string]*client{}
	for _, uid := range []string{"alice", "bob", "carol", "dave"} {
		c := h.mustDial("tok:" + uid)
		c.sendJSON(map[string]any{"type": "ping", "reqID": 1})
		if f := c.mustNext(wait); f.Type != "pong" {
			t.Fatalf("%s got %+v, want pong", uid, f)
		}
		conns[uid] = c
	}
	sent := h.send("alice", "bob", fsm.SessionSingle, "oops")
	h.send("carol", "g1", fsm.SessionGroup, "hi group")

	// A revoke goes to both users of the single chat, nobody else.
	if r := h.apply(fsm.CmdRevokeMessage, fsm.RevokeMessage{ConversationID: sent.ConversationID, Seq: 1, RevokerUID: "alice"}); r.Error() != nil {
		t.Fatal(r.Error())
	}
	for _, uid := range []string{"alice", "bob"} {
		m := noticeFields(t, conns[uid], "revoke")
		if m["conversationID"] != sent.ConversationID || m["seq"] != float64(1) || m["msgID"] != sent.MsgID || m["revokerUid"] != "alice" {
			t.Fatalf("%s's revoke frame %v", uid, m)
		}
	}
	// A group revoke goes to the members.
	if r := h.apply(fsm.CmdRevokeMessage, fsm.RevokeMessage{ConversationID: "sg_g1", Seq: 1, RevokerUID: "alice"}); r.Error() != nil {
		t.Fatal(r.Error())
	}
	for _, uid := range []string{"alice", "carol"} {
		if m := noticeFields(t, conns[uid], "revoke"); m["conversationID"] != "sg_g1" {
			t.Fatalf("%s's group revoke frame %v", uid, m)
		}
	}
	// bob reads: alice (the peer) and bob's own connection get the receipt.
	if r := h.apply(fsm.CmdMarkAsRead, fsm.MarkAsRead{UID: "bob", ConversationID: sent.ConversationID, HasReadSeq: 1}); r.Error() != nil {
		t.Fatal(r.Error())
	}
	for _, uid := range []string{"alice", "bob"} {
		m := noticeFields(t, conns[uid], "read_receipt")
		if m["conversationID"] != sent.ConversationID || m["uid"] != "bob" || m["hasReadSeq"] != float64(1) {
			t.Fatalf("%s's read_receipt frame %v", uid, m)
		}
	}
	// dave is in neither conversation, carol only in the group.
	for _, uid := range []string{"dave", "carol"} {
		if f, err := conns[uid].next(100 * time.Millisecond); err == nil {
			t.Fatalf("%s got a frame %s", uid, f.raw)
		}
	}
}

// A resume replays the messages a user deleted from their own view marked deleted, without
// content; the peer's replay is unchanged.
func TestResumeHidesTheUsersDeletions(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("alice", "bob")
	r := h.send("alice", "bob", fsm.SessionSingle, "secret")
	h.send("bob", "alice", fsm.SessionSingle, "reply")
	if res := h.apply(fsm.CmdDeleteMessages, fsm.DeleteMessages{UID: "alice", ConversationID: r.ConversationID, Seqs: []uint64{1}}); res.Error() != nil {
		t.Fatal(res.Error())
	}
	for _, tc := range []struct {
		uid     string
		deleted bool
	}{{"alice", true}, {"bob", false}} {
		c := h.mustDial("tok:" + tc.uid)
		c.sendJSON(map[string]any{"type": "resume", "seqs": map[string]uint64{r.ConversationID: 0}})
		ms := c.msgs(2, wait)
		var first fsm.MessageView
		if err := json.Unmarshal(ms[0].raw, &first); err != nil {
			t.Fatal(err)
		}
		hidden := first.Deleted && string(first.Content) == "{}" && first.ContentType == 0
		if ms[0].Seq != 1 || ms[1].Seq != 2 || hidden != tc.deleted || (!tc.deleted && first.Deleted) ||
			string(ms[1].Content) != `{"text":"reply"}` || first.MsgID != r.MsgID {
			t.Fatalf("%s's replay: %s then %s, want seq 1 deleted=%v", tc.uid, ms[0].raw, ms[1].raw, tc.deleted)
		}
	}
}
