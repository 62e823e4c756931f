package httpapi

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/imnode/imnode/fsm"
)

// convState is what the per-user read routes would answer for uids and conversations:
// refused writes leave it unchanged.
func convState(e *env, uids, convs []string) string {
	e.t.Helper()
	f := e.b.f
	out := ""
	for _, uid := range uids {
		cs, err := f.Conversations(uid)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := json.Marshal(cs)
		out += uid + ": " + string(b) + "\n"
		for _, c := range convs {
			ds, err := f.DeletedSeqs(uid, c, 1, 100)
			if err != nil {
				e.t.Fatal(err)
			}
			out += fmt.Sprintf("%s deleted in %s: %v\n", uid, c, ds)
		}
	}
	for _, c := range convs {
		ms, err := f.PullMessages(c, 1, 100, 0)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := json.Marshal(ms)
		out += c + ": " + string(b) + "\n"
	}
	return out
}

func pullViews(e *env, token string, body map[string]any) []fsm.MessageView {
	e.t.Helper()
	var ms []fsm.MessageView
	e.ok("msg/pull_msg_by_seq", token, body).data(e.t, &ms)
	return ms
}

func TestRevokeAndDeleteRoutes(t *testing.T) {
	e := newEnv(t, nil)
	e.register("a", "b", "c", "o", "m")
	ta, tb, tc, tm := e.token("a"), e.token("b"), e.token("c"), e.token("m")
	e.ok("manager/send_msg", e.admin, relSend("a", "b", 1))
	e.ok("manager/send_msg", e.admin, relSend("b", "a", 1))
	g := e.createGroup("o", "m", "c")
	e.ok("manager/send_msg", e.admin, relSend("m", g, 2))
	e.ok("manager/send_msg", e.admin, relSend("c", g, 2))
	si, sg := "si_a_b", "sg_"+g
	rev := func(conv string, seq int, extra ...any) map[string]any {
		b := map[string]any{"operationID": relOp(), "conversationID": conv, "seq": seq}
		for i := 0; i+1 < len(extra); i += 2 {
			b[extra[i].(string)] = extra[i+1]
		}
		return b
	}

	users, convs := []string{"a", "b", "c", "m", "o"}, []string{si, sg}
	before := convState(e, users, convs)
	for _, tc := range []struct {
		name, route, token string
		body               map[string]any
		code               int
	}{
		{"revoke the peer's", "msg/revoke_msg", tb, rev(si, 1), CodeNoPermission},
		{"revoke as another user", "msg/revoke_msg", tb, rev(si, 1, "revokerUid", "a"), CodeNoPermission},
		{"revoke by an outsider", "msg/revoke_msg", tc, rev(si, 1), CodeNoPermission},
		{"revoke a member's by a member", "msg/revoke_msg", tm, rev(sg, 2), CodeNoPermission},
		{"revoke admin for a user without rights", "msg/revoke_msg", e.admin, rev(si, 1, "uid", "b"), CodeNoPermission},
		{"revoke admin for an unknown user", "msg/revoke_msg", e.admin, rev(si, 1, "uid", "zz"), CodeUserNotFound},
		{"revoke two revokers", "msg/revoke_msg", e.admin, rev(si, 1, "uid", "a", "revokerUid", "b"), CodeArgs},
		{"revoke seq 0", "msg/revoke_msg", ta, rev(si, 0), CodeArgs},
		{"revoke no seq", "msg/revoke_msg", ta, map[string]any{"operationID": relOp(), "conversationID": si}, CodeArgs},
		{"revoke no operationID", "msg/revoke_msg", ta, map[string]any{"conversationID": si, "seq": 1}, CodeArgs},
		{"revoke seq beyond max", "msg/revoke_msg", ta, rev(si, 3), CodeMessageNotFound},
		{"revoke unknown conversation", "msg/revoke_msg", ta, rev("si_a_zz", 1), CodeMessageNotFound},
		{"revoke bad conversationID", "msg/revoke_msg", ta, rev("x_a_b", 1), CodeArgs},
		{"delete for another", "msg/delete_msgs", tb, map[string]any{"operationID": relOp(), "uid": "a", "conversationID": si, "seqs": []int{1}}, CodeNoPermission},
		{"delete no seqs", "msg/delete_msgs", ta, map[string]any{"operationID": relOp(), "uid": "a", "conversationID": si, "seqs": []int{}}, CodeArgs},
		{"delete seq 0", "msg/delete_msgs", ta, map[string]any{"operationID": relOp(), "uid": "a", "conversationID": si, "seqs": []int{0}}, CodeArgs},
		{"delete duplicate", "msg/delete_msgs", ta, map[string]any{"operationID": relOp(), "uid": "a", "conversationID": si, "seqs": []int{1, 1}}, CodeArgs},
		{"delete beyond max", "msg/delete_msgs", ta, map[string]any{"operationID": relOp(), "uid": "a", "conversationID": si, "seqs": []int{1, 9}}, CodeMessageNotFound},
		{"delete not the user's chat", "msg/delete_msgs", tc, map[string]any{"operationID": relOp(), "uid": "c", "conversationID": si, "seqs": []int{1}}, CodeNoSuchConversation},
		{"delete not a member", "msg/delete_msgs", ta, map[string]any{"operationID": relOp(), "uid": "a", "conversationID": sg, "seqs": []int{1}}, CodeNotInGroupYet},
		{"delete unknown user", "msg/delete_msgs", e.admin, map[string]any{"operationID": relOp(), "uid": "zz", "conversationID": si, "seqs": []int{1}}, CodeUserNotFound},
		{"pull another's view", "msg/pull_msg_by_seq", tb, map[string]any{"conversationID": si, "beginSeq": 1, "endSeq": 2, "uid": "a"}, CodeNoPermission},
	} {
		t.Run(tc.name, func(t *testing.T) { e.with(t).wantCode(tc.route, tc.token, tc.body, tc.code) })
	}
	if convState(e, users, convs) != before {
		t.Fatalf("refused requests changed the state")
	}

	// The sender revokes their own message; everyone pulls it revoked at the same seq.
	orig := pullViews(e, tb, map[string]any{"conversationID": si, "beginSeq": 1, "endSeq": 2})
	var rr revokeResp
	e.ok("msg/revoke_msg", ta, rev(si, 1)).data(t, &rr)
	if rr != (revokeResp{ConversationID: si, Seq: 1, MsgID: orig[0].MsgID}) {
		t.Fatalf("revoke answer %+v", rr)
	}
	ms := pullViews(e, tb, map[string]any{"conversationID": si, "beginSeq": 1, "endSeq": 2})
	if len(ms) != 2 || !ms[0].Revoked || ms[0].ContentType != fsm.ContentRevoked || ms[0].MsgID != orig[0].MsgID ||
		ms[0].Seq != 1 || ms[1].Revoked || string(ms[1].Content) != string(orig[1].Content) {
		t.Fatalf("pull after revoke: %+v", ms)
	}
	e.wantCode("msg/revoke_msg", ta, rev(si, 1), CodeMessageRevoked)
	// The group owner revokes a member's message; the app administrator anything.
	e.ok("msg/revoke_msg", e.admin, rev(sg, 1, "revokerUid", "o"))
	e.ok("msg/revoke_msg", e.admin, rev(sg, 2))
	if ms := pullViews(e, tm, map[string]any{"conversationID": sg, "beginSeq": 1, "endSeq": 2}); !ms[0].Revoked || !ms[1].Revoked {
		t.Fatalf("group pull after revokes: %+v", ms)
	}

	// Per-user delete: a's pulls mark seq 2 deleted, b's do not; the admin sees a's view
	// with uid and the stored one without.
	e.ok("msg/delete_msgs", ta, map[string]any{"operationID": relOp(), "uid": "a", "conversationID": si, "seqs": []int{2}})
	ms = pullViews(e, ta, map[string]any{"conversationID": si, "beginSeq": 1, "endSeq": 2})
	if len(ms) != 2 || !ms[0].Revoked || !ms[1].Deleted || string(ms[1].Content) != "{}" || ms[1].Seq != 2 || ms[1].MsgID != orig[1].MsgID {
		t.Fatalf("a's pull after delete: %+v", ms)
	}
	if ms := pullViews(e, tb, map[string]any{"conversationID": si, "beginSeq": 2, "endSeq": 2}); ms[0].Deleted {
		t.Fatalf("b's pull shows a's deletion: %+v", ms)
	}
	if ms := pullViews(e, e.admin, map[string]any{"conversationID": si, "beginSeq": 2, "endSeq": 2, "uid": "a"}); !ms[0].Deleted {
		t.Fatalf("admin pull of a's view: %+v", ms)
	}
	if ms := pullViews(e, e.admin, map[string]any{"conversationID": si, "beginSeq": 2, "endSeq": 2}); ms[0].Deleted {
		t.Fatalf("admin pull without uid: %+v", ms)
	}
}

func TestReadStateAndConversationRoutes(t *testing.T) {
	e := newEnv(t, nil)
	e.register("a", "b", "c", "o")
	ta, tb := e.token("a"), e.token("b")
	for i := 0; i < 3; i++ {
		e.ok("manager/send_msg", e.admin, relSend("b", "a", 1))
	}
	g := e.createGroup("o", "a")
	e.ok("manager/send_msg", e.admin, relSend("o", g, 2))
	si, sg := "si_a_b", "sg_"+g
	mark := func(uid, conv string, seq int) map[string]any {
		return map[string]any{"operationID": relOp(), "uid": uid, "conversationID": conv, "hasReadSeq": seq}
	}
	set := func(uid, conv string, kv ...any) map[string]any {
		b := map[string]any{"operationID": relOp(), "uid": uid, "conversationID": conv}
		for i := 0; i+1 < len(kv); i += 2 {
			b[kv[i].(string)] = kv[i+1]
		}
		return b
	}

	users, convs := []string{"a", "b", "c", "o"}, []string{si, sg}
	before := convState(e, users, convs)
	for _, tc := range []struct {
		name, route, token string
		body               map[string]any
		code               int
	}{
		{"mark for another", "msg/mark_as_read", tb, mark("a", si, 1), CodeNoPermission},
		{"mark beyond max", "msg/mark_as_read", ta, mark("a", si, 4), CodeArgs},
		{"mark zero", "msg/mark_as_read", ta, mark("a", si, 0), CodeArgs},
		{"mark no seq", "msg/mark_as_read", ta, map[string]any{"operationID": relOp(), "uid": "a", "conversationID": si}, CodeArgs},
		{"mark not the user's", "msg/mark_as_read", e.admin, mark("c", si, 1), CodeNoSuchConversation},
		{"mark unknown group", "msg/mark_as_read", e.admin, mark("a", "sg_nope", 1), CodeGroupNotFound},
		{"mark not a member", "msg/mark_as_read", e.admin, mark("b", sg, 1), CodeNotInGroupYet},
		{"mark unknown user", "msg/mark_as_read", e.admin, mark("zz", si, 1), CodeUserNotFound},
		{"set nothing", "conversation/set_conversation", ta, set("a", si), CodeArgs},
		{"set bad recvMsgOpt", "conversation/set_conversation", ta, set("a", si, "recvMsgOpt", 7), CodeArgs},
		{"set both", "conversation/set_conversation", ta, set("a", si, "recvMsgOpt", 1, "doNotDisturb", true), CodeArgs},
		{"set for another", "conversation/set_conversation", tb, set("a", si, "isPinned", true), CodeNoPermission},
		{"set not a member", "conversation/set_conversation", tb, set("b", sg, "isPinned", true), CodeNotInGroupYet},
		{"conversations of another", "conversation/get_all_conversations", tb, map[string]any{"uid": "a"}, CodeNoPermission},
		{"conversations unknown user", "conversation/get_all_conversations", e.admin, map[string]any{"uid": "zz"}, CodeUserNotFound},
		{"newest_seq of another", "msg/newest_seq", tb, map[string]any{"uid": "a"}, CodeNoPermission},
	} {
		t.Run(tc.name, func(t *testing.T) { e.with(t).wantCode(tc.route, tc.token, tc.body, tc.code) })
	}
	if convState(e, users, convs) != before {
		t.Fatalf("refused requests changed the state")
	}

	var cs []conversationInfo
	e.ok("conversation/get_all_conversations", ta, map[string]any{"uid": "a"}).data(t, &cs)
	if len(cs) != 2 || cs[0].ConversationID != sg || cs[1].ConversationID != si || cs[1].UnreadCount != 3 ||
		cs[1].MaxSeq != 3 || cs[1].LatestMsg == nil || cs[1].LatestMsg.Seq != 3 || cs[1].LatestMsgSendTime != cs[1].LatestMsg.SendTime ||
		cs[0].SessionType != 2 || cs[0].UnreadCount != 1 {
		t.Fatalf("a's conversations %+v", cs)
	}

	var rs readSeqResp
	e.ok("msg/mark_as_read", ta, mark("a", si, 2)).data(t, &rs)
	if rs.HasReadSeq != 2 {
		t.Fatalf("mark_as_read answer %+v", rs)
	}
	// Lower: success, the position stays.
	e.ok("msg/mark_as_read", e.admin, mark("a", si, 1)).data(t, &rs)
	if rs.HasReadSeq != 2 {
		t.Fatalf("lower mark_as_read answer %+v, want 2", rs)
	}
	e.ok("conversation/set_conversation", ta, set("a", si, "isPinned", true))
	e.ok("conversation/set_conversation", ta, set("a", sg, "doNotDisturb", true))
	e.ok("conversation/get_all_conversations", e.admin, map[string]any{"uid": "a"}).data(t, &cs)
	if cs[0].ConversationID != si || !cs[0].IsPinned || cs[0].HasReadSeq != 2 || cs[0].UnreadCount != 1 ||
		cs[1].RecvMsgOpt != 2 || !cs[1].DoNotDisturb || cs[1].IsPinned {
		t.Fatalf("a's conversations after mark and set: %+v", cs)
	}
	var ns conversationsResp
	e.ok("msg/newest_seq", ta, map[string]any{"uid": "a"}).data(t, &ns)
	for _, c := range ns.Conversations {
		if c.ConversationID == si && (c.MaxSeq != 3 || c.HasReadSeq != 2) {
			t.Fatalf("newest_seq %+v, want si_a_b max 3 read 2", ns)
		}
	}
	// b never read anything: the conversation is all unread for b.
	e.ok("conversation/get_all_conversations", tb, map[string]any{"uid": "b"}).data(t, &cs)
	if len(cs) != 1 || cs[0].UnreadCount != 3 || cs[0].HasReadSeq != 0 {
		t.Fatalf("b's conversations %+v", cs)
	}
	// A repeat with the same operationID gets the first answer and applies nothing.
	body := mark("b", si, 3)
	e.ok("msg/mark_as_read", tb, body)
	e.ok("msg/mark_as_read", tb, body).data(t, &rs)
	if rs.HasReadSeq != 3 {
		t.Fatalf("repeated mark_as_read answer %+v", rs)
	}
}
