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
	if string(r.Data) != `{"conversations":[{"conversationID":"si_alice_bob","maxSeq":1,"minSeq":0}]}` {
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
	if string(r.Data) != `{"conversations":[{"conversationID":"si_alice_bob","maxSeq":3,"minSeq":0}]}` {
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
	if string(r.Data) != `{"conversations":[{"conversationID":"si_alice_bob","maxSeq":1,"minSeq":0}]}` {
		t.Fatalf("got %s, want one message", r.Data)
	}
}
