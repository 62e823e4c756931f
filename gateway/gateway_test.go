package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/imnode/imnode/fsm"
	dto "github.com/prometheus/client_model/go"
)

const wait = 5 * time.Second

func TestLivePushSingleAndGroup(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("alice", "bob", "carol", "dave")
	h.group("g1", "alice", "carol")
	alice := h.mustDial("tok:alice")
	bob1 := h.mustDial("tok:bob")
	bob2 := h.mustDial("tok:bob") // a second device
	carol := h.mustDial("tok:carol")
	dave := h.mustDial("tok:dave", "uid=dave") // own uid in the query is fine
	for _, c := range []*client{alice, bob1, bob2, carol, dave} {
		c.sendJSON(map[string]any{"type": "ping", "reqID": 1}) // start live now
		if f := c.mustNext(wait); f.Type != "pong" || string(f.ReqID) != "1" {
			t.Fatalf("got %+v, want pong with reqID 1", f)
		}
	}

	h.send("alice", "bob", fsm.SessionSingle, "hi bob")
	conv := fsm.SingleConversationID("alice", "bob")
	for name, c := range map[string]*client{"alice": alice, "bob1": bob1, "bob2": bob2} {
		m := c.msgs(1, wait)[0]
		if m.ConversationID != conv || m.Seq != 1 || m.SendID != "alice" || !strings.Contains(string(m.Content), "hi bob") {
			t.Fatalf("%s got %+v, want %s #1 from alice", name, m, conv)
		}
	}
	h.send("carol", "g1", fsm.SessionGroup, "hi group")
	for name, c := range map[string]*client{"alice": alice, "carol": carol} {
		m := c.msgs(1, wait)[0]
		if m.ConversationID != "sg_g1" || m.Seq != 1 {
			t.Fatalf("%s got %+v, want sg_g1 #1", name, m)
		}
	}
	carol.quiet(200 * time.Millisecond)
	bob1.quiet(50 * time.Millisecond)
	dave.quiet(50 * time.Millisecond)
}

// The FSM hurries its commits for pushes only while Listening: from a connection's
// registration until it is gone.
func TestListeningWhileConnected(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("alice")
	if h.gw.Listening() {
		t.Fatal("listening with no connection")
	}
	alice := h.mustDial("tok:alice")
	if !h.gw.Listening() {
		t.Fatal("not listening with a connection open")
	}
	_ = alice.ws.Close()
	deadline := time.Now().Add(wait)
	for h.gw.Listening() {
		if time.Now().After(deadline) {
			t.Fatalf("still listening %v after the only connection closed", wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Awaits says yes to a message or notice that a user connected here would receive: the
// FSM commits the rest at leisure.
func TestAwaitsConnectedRecipients(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("alice", "bob", "carol", "dave")
	single := func(from, to string) []fsm.Message {
		return []fsm.Message{{SessionType: fsm.SessionSingle, SendID: from, RecvID: to}}
	}
	notice := func(uids ...string) []fsm.Notice { return []fsm.Notice{{Type: "revoke", UIDs: uids}} }
	if h.gw.Awaits(single("bob", "alice"), notice("alice")) {
		t.Fatal("awaited with no connection")
	}
	alice := h.mustDial("tok:alice")
	carol := h.mustDial("tok:carol")
	defer carol.ws.Close()
	for _, tc := range []struct {
		name    string
		msgs    []fsm.Message
		notices []fsm.Notice
		want    bool
	}{
		{"to alice", single("bob", "alice"), nil, true},
		{"from alice, to her other devices", single("alice", "bob"), nil, true},
		{"between users not connected", single("bob", "dave"), nil, false},
		{"one of several to alice", append(single("bob", "dave"), single("dave", "alice")...), nil, true},
		{"a group message, whoever its members", []fsm.Message{{SessionType: fsm.SessionGroup, SendID: "bob", RecvID: "g1"}}, nil, true},
		{"a notice to others", nil, notice("bob", "dave"), false},
		{"a notice to carol among others", nil, notice("bob", "carol"), true},
		{"nothing", nil, nil, false},
	} {
		if got := h.gw.Awaits(tc.msgs, tc.notices); got != tc.want {
			t.Errorf("%s: Awaits = %v, want %v", tc.name, got, tc.want)
		}
	}
	_ = alice.ws.Close()
	deadline := time.Now().Add(wait)
	for h.gw.Awaits(single("bob", "alice"), nil) {
		if time.Now().After(deadline) {
			t.Fatalf("a message to alice still awaited %v after her only connection closed", wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !h.gw.Awaits(single("bob", "carol"), nil) {
		t.Fatal("a message to carol not awaited while she stays connected")
	}
}

func TestGroupRoutingBothWays(t *testing.T) {
	// Few connected uids, big group: probe each uid. Many connected uids, small group:
	// scan the group. Both must reach exactly the connected members.
	for _, tc := range []struct {
		name      string
		members   int
		connected []string
	}{
		{"probe connected uids", 40, []string{"u0", "u1", "x"}},
		{"scan group members", 2, []string{"u0", "u1", "x", "y", "z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			var members []string
			for i := 0; i < tc.members; i++ {
				members = append(members, fmt.Sprintf("u%d", i))
			}
			h.register(append(members, "x", "y", "z")...)
			h.group("g", members[0], members[1:]...)
			conns := map[string]*client{}
			for _, uid := range tc.connected {
				c := h.mustDial("tok:" + uid)
				c.sendJSON(map[string]any{"type": "ping"})
				c.mustNext(wait)
				conns[uid] = c
			}
			h.send("u0", "g", fsm.SessionGroup, "to all")
			for uid, c := range conns {
				if strings.HasPrefix(uid, "u") {
					if m := c.msgs(1, wait)[0]; m.ConversationID != "sg_g" {
						t.Fatalf("%s got %+v", uid, m)
					}
				} else {
					c.quiet(100 * time.Millisecond)
				}
			}
		})
	}
}

func TestLiveOnlyStartsAtConnect(t *testing.T) {
	h := newHarness(t, Options{ResumeWait: 100 * time.Millisecond})
	h.register("a", "b")
	for i := 0; i < 3; i++ {
		h.send("a", "b", fsm.SessionSingle, "old")
	}
	c := h.mustDial("tok:b")
	// No frame at all: delivery starts after ResumeWait, from the connect point, and a
	// message applied before then is not lost.
	h.send("a", "b", fsm.SessionSingle, "new")
	got := c.msgs(1, wait)
	if got[0].Seq != 4 {
		t.Fatalf("got seq %d, want 4 (only what was applied after connecting)", got[0].Seq)
	}
	c.quiet(200 * time.Millisecond)
}

// TestHandshakeAfterBaseline: the client receives the 101 only once its connection is
// registered and has read its baseline, so what is applied after the client can know it is
// connected is pushed. (fasthttp used to write the 101 before the connection registered;
// a message applied in that window was in no baseline and pushed to no one.)
func TestHandshakeAfterBaseline(t *testing.T) {
	h := newHarness(t, Options{ResumeWait: 50 * time.Millisecond})
	h.register("a", "b")
	h.send("a", "b", fsm.SessionSingle, "old")
	entered, release := make(chan struct{}), make(chan struct{})
	hook := func() { close(entered); <-release }
	h.beforeNewest.Store(&hook)
	type dialed struct {
		c   *client
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		c, _, err := h.dial("tok:b")
		done <- dialed{c, err}
	}()
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("the connection never read its baseline")
	}
	select {
	case d := <-done:
		t.Fatalf("the handshake was answered before the baseline was read (err %v)", d.err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	d := <-done
	if d.err != nil {
		t.Fatal(d.err)
	}
	h.send("a", "b", fsm.SessionSingle, "new")
	if got := d.c.msgs(1, wait); got[0].Seq != 2 {
		t.Fatalf("got seq %d, want 2", got[0].Seq)
	}
	d.c.quiet(200 * time.Millisecond)
}

// TestResumeUnderConcurrentApply resumes while messages are applied as fast as possible:
// the client must get every seq after its resume point exactly once, in order.
func TestResumeUnderConcurrentApply(t *testing.T) {
	h := newHarness(t, Options{SendBufferFrames: 4096})
	h.register("a", "b", "c")
	h.group("g", "a", "b")
	const total = 600
	single := fsm.SingleConversationID("a", "b")
	for i := 0; i < 50; i++ {
		h.send("a", "b", fsm.SessionSingle, "before")
		h.send("b", "g", fsm.SessionGroup, "before")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 50; i < total; i++ {
			h.send("a", "b", fsm.SessionSingle, "during")
			h.send("a", "g", fsm.SessionGroup, "during")
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	// Several clients resuming at different moments from different points.
	type res struct {
		from map[string]uint64
		c    *client
	}
	var clients []res
	for i, from := range []uint64{0, 10, 49, 50} {
		time.Sleep(time.Duration(i) * 3 * time.Millisecond)
		c := h.mustDial("tok:b")
		seqs := map[string]uint64{single: from, "sg_g": from / 2}
		if from == 0 {
			seqs = map[string]uint64{} // unlisted conversations replay from seq 1
		}
		c.sendJSON(map[string]any{"type": "resume", "seqs": seqs})
		clients = append(clients, res{seqs, c})
	}
	wg.Wait()
	for i, r := range clients {
		want := 2*total - int(r.from[single]) - int(r.from["sg_g"])
		got := r.c.msgs(want, 20*time.Second)
		last := map[string]uint64{single: r.from[single], "sg_g": r.from["sg_g"]}
		for _, m := range got {
			if m.Seq != last[m.ConversationID]+1 {
				t.Fatalf("client %d: %s got seq %d after %d (gap or duplicate)", i, m.ConversationID, m.Seq, last[m.ConversationID])
			}
			last[m.ConversationID] = m.Seq
		}
		r.c.quiet(100 * time.Millisecond)
	}
	// A resume is taken only as the first frame.
	c := clients[0].c
	c.sendJSON(map[string]any{"type": "resume", "seqs": map[string]uint64{}})
	if f := c.mustNext(wait); f.Type != "error" || f.ErrCode != 1001 {
		t.Fatalf("late resume got %+v, want an error frame 1001", f)
	}
}

// TestResumeIgnoresOthersConversations: a resume cannot replay a conversation of others.
func TestResumeIgnoresOthersConversations(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("a", "b", "c")
	h.send("a", "b", fsm.SessionSingle, "secret")
	c := h.mustDial("tok:c")
	c.sendJSON(map[string]any{"type": "resume", "seqs": map[string]uint64{fsm.SingleConversationID("a", "b"): 0}})
	c.quiet(300 * time.Millisecond)
}

// TestGapFill: a node that installs a snapshot never sees those messages in OnCommit; the
// next live message reveals the gap and the connection pulls it.
func TestGapFill(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("a", "b")
	c := h.mustDial("tok:b")
	c.sendJSON(map[string]any{"type": "ping"})
	c.mustNext(wait)
	h.send("a", "b", fsm.SessionSingle, "1")
	h.mute.Store(true)
	h.send("a", "b", fsm.SessionSingle, "2")
	h.send("a", "b", fsm.SessionSingle, "3")
	h.mute.Store(false)
	h.send("a", "b", fsm.SessionSingle, "4")
	for i, m := range c.msgs(4, wait) {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
	}
}

func TestSendAndPullFrames(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("a", "b")
	c := h.mustDial("tok:a")
	c.sendJSON(map[string]any{"type": "send", "reqID": "r1", "operationID": "op1", "recvID": "b",
		"sessionType": 1, "contentType": 101, "content": map[string]string{"text": "yo"}})
	var ack, pushed frame
	for ack.Type == "" || pushed.Type == "" {
		f := c.mustNext(wait)
		switch f.Type {
		case "sendAck":
			ack = f
		case "msg":
			pushed = f
		}
	}
	if ack.ErrCode != 0 || string(ack.ReqID) != `"r1"` || ack.Seq != 1 || ack.MsgID == "" || ack.ConversationID != "si_a_b" {
		t.Fatalf("sendAck %+v", ack)
	}
	if pushed.MsgID != ack.MsgID {
		t.Fatalf("pushed %s, acked %s", pushed.MsgID, ack.MsgID)
	}
	// Sending as someone else is the API's 1002, passed through.
	c.sendJSON(map[string]any{"type": "send", "reqID": 2, "operationID": "op2", "sendID": "b", "recvID": "a",
		"sessionType": 1, "contentType": 101, "content": map[string]string{"text": "x"}})
	if f := c.mustNext(wait); f.Type != "sendAck" || f.ErrCode != 1002 {
		t.Fatalf("got %+v, want sendAck 1002", f)
	}
	c.sendJSON(map[string]any{"type": "pull", "reqID": 3, "conversationID": "si_a_b", "beginSeq": 1, "endSeq": 10})
	f := c.mustNext(wait)
	var data []frame
	if f.Type != "pullResp" || f.ErrCode != 0 || json.Unmarshal(f.Data, &data) != nil || len(data) != 1 || data[0].MsgID != ack.MsgID {
		t.Fatalf("pullResp %+v", f)
	}
	c.sendJSON(map[string]any{"type": "bogus", "reqID": 4})
	if f := c.mustNext(wait); f.Type != "error" || f.ErrCode != 1001 {
		t.Fatalf("got %+v, want error 1001", f)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	h := newHarness(t, Options{MaxConnections: 2})
	h.register("a", "b")
	for _, tc := range []struct {
		token, query string
		status, code int
	}{
		{"bad", "", http.StatusUnauthorized, 1502},
		{"tok:a", "uid=b", http.StatusForbidden, 1002},
	} {
		_, resp, err := h.dial(tc.token, tc.query)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			t.Fatalf("%s %s: got %v %v, want HTTP %d", tc.token, tc.query, resp, err, tc.status)
		}
		var env struct{ ErrCode int }
		_ = json.NewDecoder(resp.Body).Decode(&env)
		if env.ErrCode != tc.code {
			t.Fatalf("%s: errCode %d, want %d", tc.token, env.ErrCode, tc.code)
		}
	}
	// An administrator connects for any uid.
	adm := h.mustDial("admin", "uid=b")
	adm.sendJSON(map[string]any{"type": "ping"})
	adm.mustNext(wait)
	h.send("a", "b", fsm.SessionSingle, "for b")
	if m := adm.msgs(1, wait)[0]; m.SendID != "a" {
		t.Fatalf("admin-as-b got %+v", m)
	}
	h.mustDial("tok:a")
	_, resp, err := h.dial("tok:a")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: got %v %v, want 503 (limit 2)", resp, err)
	}
}

func TestDeletedUserIsClosed(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("a", "b")
	a1, a2, b := h.mustDial("tok:a"), h.mustDial("tok:a"), h.mustDial("tok:b")
	h.apply(fsm.CmdDeleteUsers, fsm.DeleteUsers{UIDs: []string{"a"}})
	for _, c := range []*client{a1, a2} {
		if code, text := c.closeCode(wait); code != CloseUserDeleted || text != "user deleted" {
			t.Fatalf("got close %d %q, want %d user deleted", code, text, CloseUserDeleted)
		}
	}
	b.sendJSON(map[string]any{"type": "ping"})
	if f := b.mustNext(wait); f.Type != "pong" {
		t.Fatalf("b got %+v after a's deletion", f)
	}
}

func TestShutdownClosesWithReason(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("a")
	c := h.mustDial("tok:a")
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = h.gw.Close(t.Context(), CloseGoingAway, "node shutting down: reconnect to another node")
	}()
	if code, text := c.closeCode(wait); code != CloseGoingAway || !strings.Contains(text, "reconnect") {
		t.Fatalf("got close %d %q, want 1001 with a reason", code, text)
	}
	if _, resp, err := h.dial("tok:a"); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after close: %v %v, want 503", resp, err)
	}
}

// TestSlowClientDisconnected: a client that does not read is closed once its buffer
// fills; a client that reads gets every message and the node's memory stays bounded.
func TestSlowClientDisconnected(t *testing.T) {
	// 64 frames of slack let the fast client through a scheduling stall of a race build on
	// a loaded machine (with 8 it was once closed as too slow); the slow one still fills
	// them, since 64 frames and the socket buffers hold far less than the 25 MiB sent.
	h := newHarness(t, Options{SendBufferFrames: 64})
	h.register("a", "b", "c")
	slow := h.mustDialSilent("tok:b")
	fast := h.mustDial("tok:c")
	for _, c := range []*client{slow, fast} {
		c.sendJSON(map[string]any{"type": "ping"})
	}
	fast.mustNext(wait)
	big := strings.Repeat("x", 64<<10)
	const n = 400 // 25 MiB for b: more than autotuned loopback socket buffers hold
	// The test's goroutine reads, so that a failed read ends the test instead of leaving
	// it waiting for a reader that called t.Fatal elsewhere.
	sent := make(chan struct{})
	t.Cleanup(func() { <-sent }) // before the harness closes the FSM the sender applies to
	go func() {
		defer close(sent)
		for i := 0; i < n; i++ {
			h.send("a", "b", fsm.SessionSingle, big)
			h.send("a", "c", fsm.SessionSingle, "small")
			h.send("b", "c", fsm.SessionSingle, "small")
		}
	}()
	got := fast.msgs(2*n, 30*time.Second)
	<-sent
	if len(got) != 2*n {
		t.Fatalf("fast client got %d, want %d", len(got), 2*n)
	}
	code, _ := slow.closeCode(10 * time.Second)
	if code != CloseTooSlow && code != -1 {
		t.Fatalf("slow client closed with %d, want %d (or no close frame: its buffers were full)", code, CloseTooSlow)
	}
	var m dto.Metric
	_ = h.gw.m.closes.WithLabelValues("too_slow").Write(&m)
	if v := m.GetCounter().GetValue(); v != 1 {
		t.Fatalf("too_slow closes = %v, want 1", v)
	}
}

func TestHeartbeatAndFrameLimit(t *testing.T) {
	h := newHarness(t, Options{PingInterval: 50 * time.Millisecond, PongWait: 300 * time.Millisecond, MaxFrameBytes: 1024})
	h.register("a")
	// A client that reads answers pings (the library does it) and stays.
	alive := h.mustDial("tok:a")
	alive.quiet(600 * time.Millisecond)
	alive.sendJSON(map[string]any{"type": "ping"})
	if f := alive.mustNext(wait); f.Type != "pong" {
		t.Fatalf("live client: %+v", f)
	}
	// A client that never reads never answers a ping: dead after PongWait.
	dead := h.mustDialSilent("tok:a")
	time.Sleep(700 * time.Millisecond)
	if code, _ := dead.closeCode(wait); code != CloseHeartbeat {
		t.Fatalf("silent client closed with %d, want %d", code, CloseHeartbeat)
	}
	big := h.mustDial("tok:a")
	big.sendJSON(map[string]any{"type": "ping", "pad": strings.Repeat("x", 2048)})
	if code, _ := big.closeCode(wait); code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized frame closed with %d, want 1009", code)
	}
}

func TestDemoPage(t *testing.T) {
	h := newHarness(t, Options{})
	resp, err := http.Get("http://" + h.addr + "/demo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode != 200 || !strings.Contains(sb.String(), `type: "resume"`) {
		t.Fatalf("GET /demo: %d, %d bytes", resp.StatusCode, sb.Len())
	}
}
