package fsm

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func boolp(b bool) *bool { return &b }

// convWorld is users a, b, c with a single chat a<->b of two messages (a's seq 1, b's seq
// 2), and group g1 (owner o, admin ad, members m1, m2) with m1's seq 1 and ad's seq 2.
func convWorld(h *harness) {
	h.register("a", "b", "c")
	relGroup(h)
	for _, s := range []struct{ from, to string }{{"a", "b"}, {"b", "a"}} {
		if r := h.send(s.from, s.to, SessionSingle, "hi from "+s.from); r.Err != "" {
			h.t.Fatalf("send: %s", r.Err)
		}
	}
	for _, from := range []string{"m1", "ad"} {
		if r := h.send(from, "g1", SessionGroup, "hi from "+from); r.Err != "" {
			h.t.Fatalf("send: %s", r.Err)
		}
	}
}

func mustPullOne(t *testing.T, f *FSM, conv string, seq uint64) Message {
	t.Helper()
	ms, err := f.PullMessages(conv, seq, seq, 1)
	if err != nil || len(ms) != 1 {
		t.Fatalf("pull %s seq %d: %v, %d messages", conv, seq, err, len(ms))
	}
	return ms[0]
}

func TestRevokeMessage(t *testing.T) {
	h, notices := relHarness(t)
	convWorld(h)
	notices()
	before := h.digest()
	for _, tc := range []struct {
		name string
		c    *RevokeMessage
		want error
	}{
		{"unknown conversation", &RevokeMessage{ConversationID: "si_a_zz", Seq: 1, RevokerUID: "a"}, ErrMessageNotFound},
		{"seq 0", &RevokeMessage{ConversationID: "si_a_b", Seq: 0, RevokerUID: "a"}, ErrMessageNotFound},
		{"seq beyond max", &RevokeMessage{ConversationID: "si_a_b", Seq: 3, RevokerUID: "a"}, ErrMessageNotFound},
		{"the peer", &RevokeMessage{ConversationID: "si_a_b", Seq: 1, RevokerUID: "b"}, ErrRevokeDenied},
		{"an outsider", &RevokeMessage{ConversationID: "si_a_b", Seq: 1, RevokerUID: "c"}, ErrRevokeDenied},
		{"unknown revoker", &RevokeMessage{ConversationID: "si_a_b", Seq: 1, RevokerUID: "zz"}, ErrUserNotFound},
		{"empty revoker", &RevokeMessage{ConversationID: "si_a_b", Seq: 1}, ErrInvalidArgument},
		{"a member revokes another's", &RevokeMessage{ConversationID: "sg_g1", Seq: 2, RevokerUID: "m2"}, ErrRevokeDenied},
		{"a non-member revokes in a group", &RevokeMessage{ConversationID: "sg_g1", Seq: 1, RevokerUID: "out"}, ErrRevokeDenied},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdRevokeMessage, tc.c), tc.want) })
	}
	if h.digest() != before || len(notices()) != 0 {
		t.Fatalf("a refused revoke changed the state or told someone")
	}

	orig := mustPullOne(t, h.f, "si_a_b", 1)
	r := h.mustApply(CmdRevokeMessage, &RevokeMessage{ConversationID: "si_a_b", Seq: 1, RevokerUID: "a"})
	if r.Seq != 1 || r.MsgID != orig.MsgID || r.ConversationID != "si_a_b" {
		t.Fatalf("revoke result %+v", r)
	}
	got := mustPullOne(t, h.f, "si_a_b", 1)
	var marker RevokeContent
	if err := json.Unmarshal(got.Content, &marker); err != nil {
		t.Fatalf("revoke marker %s: %v", got.Content, err)
	}
	if !got.Revoked || got.ContentType != ContentRevoked || got.MsgID != orig.MsgID || got.Seq != 1 ||
		got.SendTime != orig.SendTime || got.RevokerUID != "a" || got.RevokeTime != h.now.UnixNano() ||
		marker != (RevokeContent{RevokerUID: "a", RevokeTime: h.now.UnixNano()}) {
		t.Fatalf("revoked message %+v (content %s)", got, got.Content)
	}
	if v := got.View(); !v.Revoked || v.ContentType != ContentRevoked {
		t.Fatalf("view of a revoked message %+v", v)
	}
	if ms, _ := h.f.PullMessages("si_a_b", 1, 2, 0); len(ms) != 2 || ms[1].Revoked {
		t.Fatalf("pull after revoke: %+v, want seqs 1 (revoked) and 2", ms)
	}
	ns := notices()
	if len(ns) != 1 || ns[0].Type != "revoke" || !reflect.DeepEqual(ns[0].UIDs, []string{"a", "b"}) ||
		ns[0].Fields["seq"] != uint64(1) || ns[0].Fields["revokerUid"] != "a" {
		t.Fatalf("notices %+v, want one revoke to a and b", ns)
	}
	before = h.digest()
	wantErr(t, h.apply(CmdRevokeMessage, &RevokeMessage{ConversationID: "si_a_b", Seq: 1, RevokerUID: "a"}), ErrAlreadyRevoked)
	if h.digest() != before || len(notices()) != 0 {
		t.Fatalf("a second revoke changed the state")
	}

	// Group: an admin revokes a member's message, the app administrator anything.
	h.mustApply(CmdRevokeMessage, &RevokeMessage{ConversationID: "sg_g1", Seq: 1, RevokerUID: "ad"})
	if ns := notices(); len(ns) != 1 || len(ns[0].UIDs) != 4 {
		t.Fatalf("group revoke notices %+v, want one to the 4 members", ns)
	}
	h.mustApply(CmdRevokeMessage, &RevokeMessage{ConversationID: "si_a_b", Seq: 2, RevokerUID: "openIM123456", Admin: true})
	if m := mustPullOne(t, h.f, "si_a_b", 2); !m.Revoked || m.RevokerUID != "openIM123456" {
		t.Fatalf("admin revoke: %+v", m)
	}

	// A message whose msglog entry is gone (retention) is not found, not a panic.
	h.send("m2", "g1", SessionGroup, "three")
	h.f.mu.RLock()
	err := h.f.db.Update(func(tx *bolt.Tx) error {
		w := newTxn(tx, nil)
		k, err := w.messageKey("sg_g1", 3)
		if err != nil || k == nil {
			t.Errorf("messageKey(sg_g1, 3) = %v, %v", k, err)
			return err
		}
		return w.msgLog.Delete(k)
	})
	h.f.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, h.apply(CmdRevokeMessage, &RevokeMessage{ConversationID: "sg_g1", Seq: 3, RevokerUID: "m2"}), ErrMessageNotFound)

	h.mustApply(CmdDismissGroup, &DismissGroup{GroupID: "g1"})
	wantErr(t, h.apply(CmdRevokeMessage, &RevokeMessage{ConversationID: "sg_g1", Seq: 2, RevokerUID: "ad"}), ErrGroupDismissed)
}

func TestDeleteMessagesIsPerUser(t *testing.T) {
	h, notices := relHarness(t)
	convWorld(h)
	notices()
	before := h.digest()
	for _, tc := range []struct {
		name string
		c    *DeleteMessages
		want error
	}{
		{"no seqs", &DeleteMessages{UID: "a", ConversationID: "si_a_b"}, ErrInvalidArgument},
		{"seq 0", &DeleteMessages{UID: "a", ConversationID: "si_a_b", Seqs: []uint64{1, 0}}, ErrInvalidArgument},
		{"seq beyond max", &DeleteMessages{UID: "a", ConversationID: "si_a_b", Seqs: []uint64{1, 3}}, ErrMessageNotFound},
		{"not the user's chat", &DeleteMessages{UID: "c", ConversationID: "si_a_b", Seqs: []uint64{1}}, ErrConversationNotFound},
		{"unknown user", &DeleteMessages{UID: "zz", ConversationID: "si_a_b", Seqs: []uint64{1}}, ErrUserNotFound},
		{"not a member", &DeleteMessages{UID: "a", ConversationID: "sg_g1", Seqs: []uint64{1}}, ErrNotGroupMember},
		{"unknown group", &DeleteMessages{UID: "a", ConversationID: "sg_nope", Seqs: []uint64{1}}, ErrGroupNotFound},
		{"no conversation", &DeleteMessages{UID: "a", ConversationID: "xx", Seqs: []uint64{1}}, ErrConversationNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdDeleteMessages, tc.c), tc.want) })
	}
	if h.digest() != before || len(notices()) != 0 {
		t.Fatalf("a refused delete changed the state or told someone")
	}

	h.mustApply(CmdDeleteMessages, &DeleteMessages{UID: "a", ConversationID: "si_a_b", Seqs: []uint64{2}})
	if ns := notices(); len(ns) != 1 || ns[0].Type != "msgs_deleted" || !reflect.DeepEqual(ns[0].UIDs, []string{"a"}) {
		t.Fatalf("notices %+v, want one msgs_deleted to a", ns)
	}
	// Deleting again is a success that changes nothing.
	h.mustApply(CmdDeleteMessages, &DeleteMessages{UID: "a", ConversationID: "si_a_b", Seqs: []uint64{2, 1}})
	if got, _ := h.f.DeletedSeqs("a", "si_a_b", 1, 100); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("a's deleted seqs %v, want [1 2]", got)
	}
	if got, _ := h.f.DeletedSeqs("a", "si_a_b", 2, 2); !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("a's deleted seqs in [2,2] %v, want [2]", got)
	}
	if got, _ := h.f.DeletedSeqs("b", "si_a_b", 1, 100); len(got) != 0 {
		t.Fatalf("b's deleted seqs %v, want none", got)
	}
	// The stored message is untouched; a's conversation list shows the newest as deleted.
	if m := mustPullOne(t, h.f, "si_a_b", 2); m.Revoked || string(m.Content) != `{"text":"hi from b"}` {
		t.Fatalf("stored message after a per-user delete: %+v", m)
	}
	cs, _ := h.f.Conversations("a")
	if len(cs) != 1 || cs[0].LastMessage == nil || !cs[0].LastMessage.Deleted || string(cs[0].LastMessage.Content) != "{}" {
		t.Fatalf("a's conversations %+v", cs)
	}
	cs, _ = h.f.Conversations("b")
	if len(cs) != 1 || cs[0].LastMessage == nil || cs[0].LastMessage.Deleted {
		t.Fatalf("b's conversations %+v", cs)
	}

	// A deleted user's per-user state goes with them.
	h.mustApply(CmdMarkAsRead, &MarkAsRead{UID: "a", ConversationID: "si_a_b", HasReadSeq: 1})
	h.mustApply(CmdDeleteUsers, &DeleteUsers{UIDs: []string{"a"}})
	h.register("a")
	if got, _ := h.f.DeletedSeqs("a", "si_a_b", 1, 100); len(got) != 0 {
		t.Fatalf("deleted seqs of a re-registered a: %v", got)
	}
	h.f.mu.RLock()
	_ = h.f.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bktConvState).Stats().KeyN; n != 0 {
			t.Errorf("convstate keeps %d keys after the user was deleted", n)
		}
		return nil
	})
	h.f.mu.RUnlock()
}

func TestMarkAsRead(t *testing.T) {
	h, notices := relHarness(t)
	convWorld(h)
	notices()
	before := h.digest()
	for _, tc := range []struct {
		name string
		c    *MarkAsRead
		want error
	}{
		{"beyond max", &MarkAsRead{UID: "a", ConversationID: "si_a_b", HasReadSeq: 3}, ErrSeqBeyondMax},
		{"not the user's chat", &MarkAsRead{UID: "c", ConversationID: "si_a_b", HasReadSeq: 1}, ErrConversationNotFound},
		{"unknown user", &MarkAsRead{UID: "zz", ConversationID: "si_a_b", HasReadSeq: 1}, ErrUserNotFound},
		{"not a member", &MarkAsRead{UID: "out", ConversationID: "sg_g1", HasReadSeq: 1}, ErrNotGroupMember},
		{"empty uid", &MarkAsRead{ConversationID: "sg_g1", HasReadSeq: 1}, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdMarkAsRead, tc.c), tc.want) })
	}
	if h.digest() != before || len(notices()) != 0 {
		t.Fatalf("a refused mark_as_read changed the state or told someone")
	}

	r := h.mustApply(CmdMarkAsRead, &MarkAsRead{UID: "a", ConversationID: "si_a_b", HasReadSeq: 2})
	if r.Seq != 2 {
		t.Fatalf("result %+v, want seq 2", r)
	}
	ns := notices()
	if len(ns) != 1 || ns[0].Type != "read_receipt" || !reflect.DeepEqual(ns[0].UIDs, []string{"b", "a"}) ||
		ns[0].Fields["hasReadSeq"] != uint64(2) || ns[0].Fields["uid"] != "a" {
		t.Fatalf("notices %+v, want one read_receipt to b and a", ns)
	}
	// Never backwards: a lower value succeeds, changes nothing and tells nobody.
	before = h.digest()
	if r := h.mustApply(CmdMarkAsRead, &MarkAsRead{UID: "a", ConversationID: "si_a_b", HasReadSeq: 1}); r.Seq != 2 {
		t.Fatalf("lower mark: %+v, want seq 2", r)
	}
	if h.digest() != before || len(notices()) != 0 {
		t.Fatalf("a lower mark_as_read changed the state or told someone")
	}
	h.mustApply(CmdMarkAsRead, &MarkAsRead{UID: "m1", ConversationID: "sg_g1", HasReadSeq: 1})
	if ns := notices(); len(ns) != 1 || !reflect.DeepEqual(ns[0].UIDs, []string{"m1"}) {
		t.Fatalf("group receipt %+v, want one to the reader only", ns)
	}
	seqs, _ := h.f.NewestSeqs("a")
	if want := []ConversationSeq{{ConversationID: "si_a_b", MaxSeq: 2, HasReadSeq: 2}}; !reflect.DeepEqual(seqs, want) {
		t.Fatalf("a's newest seqs %+v, want %+v", seqs, want)
	}
	cs, _ := h.f.Conversations("m1")
	if len(cs) != 1 || cs[0].MaxSeq != 2 || cs[0].HasReadSeq != 1 || cs[0].UnreadCount != 1 {
		t.Fatalf("m1's conversations %+v", cs)
	}
	cs, _ = h.f.Conversations("b")
	if len(cs) != 1 || cs[0].UnreadCount != 2 || cs[0].HasReadSeq != 0 {
		t.Fatalf("b's conversations %+v", cs)
	}
}

func TestSetConversationAndConversationsOrder(t *testing.T) {
	h, notices := relHarness(t)
	convWorld(h)
	h.register("d")
	h.send("ad", "d", SessionSingle, "newest")
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "g2", Name: "quiet", Members: []MemberSpec{{UID: "ad", Role: RoleOwner}}})
	notices()
	before := h.digest()
	for _, tc := range []struct {
		name string
		c    *SetConversation
		want error
	}{
		{"nothing to set", &SetConversation{UID: "ad", ConversationID: "sg_g1"}, ErrInvalidArgument},
		{"bad recvMsgOpt", &SetConversation{UID: "ad", ConversationID: "sg_g1", RecvMsgOpt: i32p(3)}, ErrInvalidArgument},
		{"not the user's", &SetConversation{UID: "ad", ConversationID: "si_a_b", Pinned: boolp(true)}, ErrConversationNotFound},
		{"not a member", &SetConversation{UID: "a", ConversationID: "sg_g2", Pinned: boolp(true)}, ErrNotGroupMember},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdSetConversation, tc.c), tc.want) })
	}
	if h.digest() != before || len(notices()) != 0 {
		t.Fatalf("a refused set_conversation changed the state or told someone")
	}

	order := func() []string {
		cs, err := h.f.Conversations("ad")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.ConversationID)
		}
		return out
	}
	// Newest message first, the group without messages last.
	if got, want := order(), []string{"si_ad_d", "sg_g1", "sg_g2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	h.mustApply(CmdSetConversation, &SetConversation{UID: "ad", ConversationID: "sg_g2", Pinned: boolp(true)})
	h.mustApply(CmdSetConversation, &SetConversation{UID: "ad", ConversationID: "sg_g1", RecvMsgOpt: i32p(RecvMsgNotNotifying)})
	if ns := notices(); len(ns) != 2 || ns[0].Type != "conversation_changed" || ns[0].Fields["isPinned"] != true {
		t.Fatalf("notices %+v", ns)
	}
	if got, want := order(), []string{"sg_g2", "si_ad_d", "sg_g1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order with g2 pinned %v, want %v", got, want)
	}
	cs, _ := h.f.Conversations("ad")
	if !cs[0].Pinned || cs[0].RecvMsgOpt != 0 || cs[0].LastMessage != nil || cs[0].SessionType != SessionGroup ||
		cs[2].RecvMsgOpt != RecvMsgNotNotifying || cs[2].Pinned || cs[2].LastMessage == nil || cs[2].LastMessage.Seq != 2 ||
		cs[1].SessionType != SessionSingle || cs[1].LastSendTime == 0 {
		t.Fatalf("conversations %+v", cs)
	}
	// Only the fields present change.
	h.mustApply(CmdSetConversation, &SetConversation{UID: "ad", ConversationID: "sg_g1", Pinned: boolp(true)})
	cs, _ = h.f.Conversations("ad")
	if cs[0].ConversationID != "sg_g1" || !cs[0].Pinned || cs[0].RecvMsgOpt != RecvMsgNotNotifying {
		t.Fatalf("after pinning g1 too: %+v", cs[0])
	}
}

// convScript applies every command of this file once and returns the entries.
func convScript(h *harness) []*raft.Log {
	var out []*raft.Log
	add := func(typ CommandType, body interface{}) {
		l := h.next(typ, nil, body)
		out = append(out, l)
		if r := asResult(h.t, h.f.Apply(l)); r.Err != "" {
			h.t.Fatalf("script %s: %s", typ, r.Err)
		}
	}
	for _, uid := range []string{"a", "b", "o", "m"} {
		add(CmdRegisterUser, &RegisterUser{User: User{UID: uid, Name: uid}})
	}
	add(CmdCreateGroup, &CreateGroup{GroupID: "g1", Name: "team", Members: []MemberSpec{{UID: "o", Role: RoleOwner}, {UID: "m"}}})
	for i, s := range []struct{ from, to string }{{"a", "b"}, {"b", "a"}, {"a", "b"}, {"m", "g1"}, {"m", "g1"}} {
		session := SessionSingle
		if s.to == "g1" {
			session = SessionGroup
		}
		add(CmdSendMessage, &SendMessage{MsgID: "m" + string(rune('0'+i)), SendID: s.from, RecvID: s.to, SessionType: session,
			ContentType: 101, Content: []byte(`{"text":"x"}`)})
	}
	add(CmdRevokeMessage, &RevokeMessage{ConversationID: "si_a_b", Seq: 2, RevokerUID: "b"})
	add(CmdRevokeMessage, &RevokeMessage{ConversationID: "sg_g1", Seq: 1, RevokerUID: "o"})
	add(CmdDeleteMessages, &DeleteMessages{UID: "a", ConversationID: "si_a_b", Seqs: []uint64{3}})
	add(CmdMarkAsRead, &MarkAsRead{UID: "b", ConversationID: "si_a_b", HasReadSeq: 2})
	add(CmdMarkAsRead, &MarkAsRead{UID: "m", ConversationID: "sg_g1", HasReadSeq: 2})
	add(CmdSetConversation, &SetConversation{UID: "a", ConversationID: "si_a_b", Pinned: boolp(true), RecvMsgOpt: i32p(1)})
	return out
}

// convReads is what the per-user read routes answer.
func convReads(t *testing.T, f *FSM) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, uid := range []string{"a", "b", "o", "m"} {
		cs, err1 := f.Conversations(uid)
		ns, err2 := f.NewestSeqs(uid)
		ds, err3 := f.DeletedSeqs(uid, "si_a_b", 1, 10)
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				t.Fatal(err)
			}
		}
		out[uid] = []any{cs, ns, ds}
	}
	for _, conv := range []string{"si_a_b", "sg_g1"} {
		ms, err := f.PullMessages(conv, 1, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		out[conv] = ms
	}
	return out
}

func TestConversationCommandsReplayAndRestore(t *testing.T) {
	h := newHarness(t)
	logs := convScript(h)
	want, wantReads := h.digest(), convReads(t, h.f)
	if m := wantReads["si_a_b"].([]Message); len(m) != 3 || !m[1].Revoked {
		t.Fatalf("script did not revoke: %+v", m)
	}

	replay := newHarness(t)
	for _, l := range logs {
		replay.f.Apply(l)
	}
	if got := replay.digest(); got != want {
		t.Fatalf("replay digest %s, want %s", got, want)
	}
	// A second replay is below the applied index: nothing changes (a revoke is not
	// applied twice, a read position does not move).
	replay.f.ApplyBatch(logs)
	if got := replay.digest(); got != want {
		t.Fatalf("second replay changed the digest")
	}
	if got := convReads(t, replay.f); !reflect.DeepEqual(got, wantReads) {
		t.Fatalf("replayed reads %+v, want %+v", got, wantReads)
	}

	// Reopened from its file (a restart), and restored from the streamed state.
	if err := replay.f.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := mustOpen(t, replay.path, Options{})
	if got := convReads(t, reopened); !reflect.DeepEqual(got, wantReads) {
		t.Fatalf("reads after reopen %+v, want %+v", got, wantReads)
	}
	fresh := newHarness(t)
	mustRestore(t, fresh.f, mustState(t, h.f))
	if got := fresh.digest(); got != want {
		t.Fatalf("restored digest %s, want %s", got, want)
	}
	if got := convReads(t, fresh.f); !reflect.DeepEqual(got, wantReads) {
		t.Fatalf("restored reads %+v, want %+v", got, wantReads)
	}
}
