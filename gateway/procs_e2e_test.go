package gateway

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/imnode/imnode/apiclient"
	"github.com/imnode/imnode/fsm"
)

// sendRetrying sends one message with a user token through addr, retrying with the same
// operationID (and body) until it is acknowledged, as DESIGN.md tells clients to: a retry
// after 1802 or a timeout is deduplicated, so each message is stored exactly once.
func sendRetrying(t *testing.T, c *apiclient.Client, opID, sendID, recvID string, session int, text string) {
	t.Helper()
	body := map[string]any{"operationID": opID, "sendID": sendID, "recvID": recvID, "sessionType": session,
		"contentType": 101, "content": map[string]string{"text": text}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.Post("msg/send_msg", body)
		if err == nil && r.ErrCode == 0 {
			return
		}
		if err == nil && r.ErrCode != 1801 && r.ErrCode != 1802 && r.ErrCode != 500 {
			t.Errorf("send %s: errCode %d %s", opID, r.ErrCode, r.ErrMsg)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("send %s: not acknowledged within 30 s", opID)
}

// TestProcsCrossNodeDelivery: a client connected to node 3 receives what was sent through
// node 1, and the user-token routes of client delivery answer for the user only.
func TestProcsCrossNodeDelivery(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0].HTTP, nodes[1].HTTP, nodes[2].HTTP
	aliceTok := mustUser(t, n1, "alice")
	bobTok := mustUser(t, n1, "bob")
	mustUser(t, n1, "carol")

	bob := newWSClient(t, bobTok)
	if err := bob.connect(n3, false); err != nil {
		t.Fatal(err)
	}
	defer bob.close()
	time.Sleep(100 * time.Millisecond) // the ping started live delivery
	alice := apiclient.New(n1).WithToken(aliceTok)
	const n = 20
	for i := 1; i <= n; i++ {
		sendRetrying(t, alice, fmt.Sprintf("x-%d", i), "alice", "bob", 1, fmt.Sprintf("hello %d", i))
	}
	conv := fsm.SingleConversationID("alice", "bob")
	if !bob.waitSeq(conv, n, 10*time.Second) {
		t.Fatalf("bob on node 3 did not get %d messages sent through node 1", n)
	}
	bob.checkExactly(conv, n)

	// Client routes with the user's own token, on another node.
	a2 := apiclient.New(n2).WithToken(aliceTok)
	r := mustPost(t, a2, "msg/newest_seq", map[string]any{"operationID": "ns", "uid": "alice"})
	var ns struct {
		Conversations []struct {
			ConversationID string `json:"conversationID"`
			MaxSeq         uint64 `json:"maxSeq"`
		} `json:"conversations"`
	}
	if err := r.DecodeData(&ns); err != nil || len(ns.Conversations) != 1 || ns.Conversations[0].MaxSeq != n {
		t.Fatalf("alice's newest_seq: %s", r.Raw)
	}
	r = mustPost(t, a2, "msg/pull_msg_by_seq", map[string]any{"operationID": "p", "conversationID": conv, "beginSeq": 1, "endSeq": 100})
	var pulled []map[string]any
	if err := r.DecodeData(&pulled); err != nil || len(pulled) != n {
		t.Fatalf("alice's pull: %d messages (%v)", len(pulled), err)
	}
	for route, body := range map[string]map[string]any{
		"friend/get_friend_list":      {"operationID": "f", "ownerUid": "alice"},
		"friend/get_blacklist":        {"operationID": "bl", "ownerUid": "alice"},
		"group/get_joined_group_list": {"operationID": "jg", "uid": "alice"},
		"user/get_user_info":          {"operationID": "ui", "uidList": []string{"alice", "bob"}},
		"msg/pull_msg_by_seq":         {"operationID": "pp", "conversationID": conv, "beginSeq": 1, "endSeq": 1},
		"msg/newest_seq":              {"operationID": "nn", "uid": "alice"},
	} {
		mustPost(t, a2, route, body) // a user's own data with its own token: errCode 0
	}
	for _, tc := range []struct {
		route string
		body  map[string]any
	}{
		{"manager/get_all_users_uid", map[string]any{"operationID": "a"}},
		{"friend/get_friend_list", map[string]any{"operationID": "f2", "ownerUid": "bob"}},
		{"group/get_joined_group_list", map[string]any{"operationID": "jg2", "uid": "bob"}},
		{"friend/import_friend", map[string]any{"operationID": "if", "ownerUid": "alice", "uid": "bob"}},
		{"msg/newest_seq", map[string]any{"operationID": "b", "uid": "bob"}},
		{"msg/pull_msg_by_seq", map[string]any{"operationID": "c", "conversationID": fsm.SingleConversationID("bob", "carol"), "beginSeq": 1, "endSeq": 1}},
		{"msg/send_msg", map[string]any{"operationID": "d", "sendID": "bob", "recvID": "alice", "sessionType": 1, "contentType": 101, "content": map[string]string{"text": "x"}}},
	} {
		r, err := a2.Post(tc.route, tc.body)
		if err != nil || r.ErrCode != 1002 {
			t.Errorf("alice's token on %s: %v %+v, want errCode 1002", tc.route, err, r)
		}
	}

	// A node that leaves (SIGTERM) closes its sockets with 1001 and a reason first.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+n3+"/ws?token="+aliceTok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = nodes[2].Cmd.Process.Signal(syscall.SIGTERM)
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok || ce.Code != CloseGoingAway || !strings.Contains(ce.Text, "leaving the cluster") {
			t.Fatalf("on SIGTERM got %v, want close 1001 \"node leaving the cluster...\"", err)
		}
		break
	}
}

// TestProcsKillNodeResume: kill -9 the node a client is connected to while messages keep
// coming; the client reconnects to another node with its last seqs and ends with every
// message exactly once, in order, including a conversation that began while it was away.
func TestProcsKillNodeResume(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0].HTTP, nodes[1].HTTP, nodes[2].HTTP
	aliceTok := mustUser(t, n1, "alice")
	bobTok := mustUser(t, n1, "bob")
	carolTok := mustUser(t, n1, "carol")
	admin := apiclient.New(n1)
	tok, err := admin.TokenFor(testSecret, "openIM123456")
	if err != nil {
		t.Fatal(err)
	}
	admin = admin.WithToken(tok)
	r := mustPost(t, admin, "group/create_group", map[string]any{"operationID": "g", "groupName": "g",
		"memberList": []map[string]any{{"uid": "alice", "setRole": 1}, {"uid": "bob", "setRole": 0}}})
	var g struct {
		GroupID string `json:"groupID"`
	}
	if err := r.DecodeData(&g); err != nil {
		t.Fatal(err)
	}

	bob := newWSClient(t, bobTok)
	defer bob.close()
	if err := bob.connect(n3, true); err != nil {
		t.Fatal(err)
	}
	alice := apiclient.New(n1).WithToken(aliceTok)
	const n = 120
	killAt := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			sendRetrying(t, alice, fmt.Sprintf("s-%d", i), "alice", "bob", 1, fmt.Sprintf("single %d", i))
			sendRetrying(t, alice, fmt.Sprintf("g-%d", i), "alice", g.GroupID, 2, fmt.Sprintf("group %d", i))
			if i == n/3 {
				close(killAt)
			}
		}
	}()
	<-killAt
	nodes[2].Signal(syscall.SIGKILL)
	// While bob is away a new conversation starts: a resume lists only what bob has
	// seen, and must bring this one from seq 1.
	carol := apiclient.New(n2).WithToken(carolTok)
	for i := 1; i <= 5; i++ {
		sendRetrying(t, carol, fmt.Sprintf("c-%d", i), "carol", "bob", 1, fmt.Sprintf("carol %d", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		bob.mu.Lock()
		dropped := len(bob.closes) > 0
		bob.mu.Unlock()
		if dropped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's connection to the killed node did not drop")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := bob.connect(n2, true); err != nil {
		t.Fatal(err)
	}
	<-done
	single := fsm.SingleConversationID("alice", "bob")
	withCarol := fsm.SingleConversationID("bob", "carol")
	group := fsm.GroupConversationID(g.GroupID)
	for conv, want := range map[string]uint64{single: n, group: n, withCarol: 5} {
		if !bob.waitSeq(conv, want, 20*time.Second) {
			t.Errorf("%s: bob got up to %d, want %d", conv, bob.lastSeq[conv], want)
			continue
		}
		bob.checkExactly(conv, want)
	}
}
