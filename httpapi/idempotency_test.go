package httpapi

import (
	"bytes"
	"context"
	"testing"

	"github.com/imnode/imnode/fsm"
)

func TestSameOperationIDOneEffect(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice", "bob")

	send := `{"operationID":"op-1","sendID":"alice","recvID":"bob","sessionType":1,"contentType":101,"content":{"text":"once"}}`
	first := e.ok("manager/send_msg", e.admin, send)
	proposals := e.b.proposals.Load()
	second := e.ok("manager/send_msg", e.admin, send)
	if !bytes.Equal(first.Raw, second.Raw) {
		t.Fatalf("repeat: got %s, want the first answer %s", second.Raw, first.Raw)
	}
	if e.b.proposals.Load() != proposals {
		t.Fatalf("the repeat was proposed again")
	}
	r := e.ok("msg/newest_seq", e.admin, map[string]any{"uid": "alice"})
	if string(r.Data) != `{"conversations":[{"conversationID":"si_alice_bob","maxSeq":1,"hasReadSeq":0,"minSeq":0}]}` {
		t.Fatalf("after a repeated send: got %s, want one message", r.Data)
	}

	// The same operationID with another body is another operation.
	other := e.ok("manager/send_msg", e.admin, `{"operationID":"op-1","sendID":"alice","recvID":"bob","sessionType":1,"contentType":101,"content":{"text":"twice"}}`)
	if bytes.Equal(other.Raw, first.Raw) {
		t.Fatalf("another body with the same operationID got the first answer")
	}
	// The same body on another route is another operation too.
	e.ok("msg/send_msg", e.token("alice"), send)
	r = e.ok("msg/newest_seq", e.admin, map[string]any{"uid": "alice"})
	if string(r.Data) != `{"conversations":[{"conversationID":"si_alice_bob","maxSeq":3,"hasReadSeq":0,"minSeq":0}]}` {
		t.Fatalf("got %s, want three messages", r.Data)
	}

	create := `{"operationID":"g-1","groupName":"g","memberList":[{"uid":"alice","setRole":1}]}`
	g1 := e.ok("group/create_group", e.admin, create)
	g2 := e.ok("group/create_group", e.admin, create)
	if !bytes.Equal(g1.Raw, g2.Raw) {
		t.Fatalf("repeated create_group: got %s, want %s", g2.Raw, g1.Raw)
	}
	r = e.ok("group/get_joined_group_list", e.admin, map[string]any{"uid": "alice"})
	var groups []groupInfo
	r.data(t, &groups)
	if len(groups) != 1 {
		t.Fatalf("repeated create_group made %d groups, want 1", len(groups))
	}

	// A failure is remembered too: the repeat gets the same error even though the state
	// changed meanwhile.
	upd := `{"operationID":"u-1","uid":"carol","name":"C"}`
	e.wantCode("user/update_user_info", e.admin, upd, CodeUserNotFound)
	e.register("carol")
	e.wantCode("user/update_user_info", e.admin, upd, CodeUserNotFound)
}

// TestRetryOnAnotherNode: a retry sent to a node that has not applied the first attempt
// misses the local record, proposes, and still gets the first answer from the FSM.
func TestRetryOnAnotherNode(t *testing.T) {
	leader := newEnv(t, nil)
	leader.register("alice", "bob")
	fb := mustFakeBackend(t)
	fb.leader = leader.b
	fb.proposeFn = func(ctx context.Context, cmd []byte) (*fsm.Result, error) { return leader.b.apply(cmd) }
	follower := newEnvWith(t, fb, nil, nil)

	send := `{"operationID":"op-2","sendID":"alice","recvID":"bob","sessionType":1,"contentType":101,"content":{"text":"x"}}`
	first := leader.ok("manager/send_msg", leader.admin, send)
	retry := follower.ok("manager/send_msg", follower.admin, send)
	if !bytes.Equal(first.Raw, retry.Raw) {
		t.Fatalf("retry on another node: got %s, want %s", retry.Raw, first.Raw)
	}
	if fb.proposals.Load() != 1 {
		t.Fatalf("the follower proposed %d times, want 1 (its local record was missing)", fb.proposals.Load())
	}
	r := leader.ok("msg/newest_seq", leader.admin, map[string]any{"uid": "alice"})
	if string(r.Data) != `{"conversations":[{"conversationID":"si_alice_bob","maxSeq":1,"hasReadSeq":0,"minSeq":0}]}` {
		t.Fatalf("got %s, want one message", r.Data)
	}
}

// TestOperationIDOfAnotherUser: two users who send the same operationID and body are two
// operations. A group command acts as the token's user, who is not in the body: the owner
// must not get an outsider's refusal of the same body, nor the outsider the owner's success.
func TestOperationIDOfAnotherUser(t *testing.T) {
	e := newEnv(t, nil)
	e.register("owner", "member", "outsider")
	r := e.ok("group/create_group", e.admin, `{"operationID":"g","groupName":"g","memberList":[{"uid":"owner","setRole":1},{"uid":"member","setRole":0}]}`)
	var g groupIDResp
	r.data(t, &g)
	mute := `{"operationID":"same","groupID":"` + g.GroupID + `","uid":"member","mutedSeconds":60}`
	e.wantCode("group/mute_group_member", e.token("outsider"), mute, CodeNoPermission)
	e.ok("group/mute_group_member", e.token("owner"), mute)
	var ms []memberInfo
	e.ok("group/get_group_member_list", e.admin, map[string]any{"groupID": g.GroupID}).data(t, &ms)
	for _, m := range ms {
		if m.UID == "member" && m.MuteEndTime == 0 {
			t.Fatalf("the owner's mute was answered from the outsider's refusal: member not muted")
		}
	}
	// The other way round: the owner's success does not answer the outsider.
	rename := `{"operationID":"same2","groupID":"` + g.GroupID + `","groupName":"renamed"}`
	e.ok("group/set_group_info", e.token("owner"), rename)
	e.wantCode("group/set_group_info", e.token("outsider"), rename, CodeNoPermission)
	// The same user's retry still gets the first answer.
	e.ok("group/mute_group_member", e.token("owner"), mute)
}
