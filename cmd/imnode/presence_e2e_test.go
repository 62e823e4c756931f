package main

import (
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/imnode/imnode/apiclient"
	"github.com/imnode/imnode/internal/proctest"
)

type onlineStatus struct {
	UserID               string `json:"userID"`
	Status               string `json:"status"`
	DetailPlatformStatus []struct {
		Platform   string `json:"platform"`
		PlatformID int    `json:"platformID"`
		NodeID     string `json:"nodeID"`
		ConnID     string `json:"connID"`
	} `json:"detailPlatformStatus"`
}

type onlineAnswer struct {
	Data             []onlineStatus `json:"data"`
	UnreachableNodes []string       `json:"unreachableNodes"`
}

func onlineOf(t *testing.T, c *apiclient.Client, uids ...string) onlineAnswer {
	t.Helper()
	var a onlineAnswer
	if err := mustOK(t, c, "user/get_users_online_status", map[string]any{"uidList": uids}).Decode(&a); err != nil {
		t.Fatal(err)
	}
	if len(a.Data) != len(uids) {
		t.Fatalf("got %d statuses for %d uids", len(a.Data), len(uids))
	}
	return a
}

// waitOnline polls c until check accepts the answer (10 s at most).
func waitOnline(t *testing.T, c *apiclient.Client, what string, check func(onlineAnswer) bool, uids ...string) onlineAnswer {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := onlineOf(t, c, uids...)
		if check(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last answer %+v", what, a)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pullState is what a node answers for a conversation: the seqs it returns and minSeq.
func pullState(t *testing.T, c *apiclient.Client, conv string) (seqs []uint64, minSeq uint64) {
	t.Helper()
	var a struct {
		Data []struct {
			Seq uint64 `json:"seq"`
		} `json:"data"`
		MinSeq uint64 `json:"minSeq"`
	}
	if err := mustOK(t, c, "msg/pull_msg_by_seq", map[string]any{"operationID": "p", "conversationID": conv, "beginSeq": 1, "endSeq": 100}).Decode(&a); err != nil {
		t.Fatal(err)
	}
	for _, m := range a.Data {
		seqs = append(seqs, m.Seq)
	}
	return seqs, a.MinSeq
}

// On three real nodes: a WebSocket client connected to node 3 is online through node 1
// and offline once it disconnects; a node that is down is listed as unreachable. With
// messageRetention set, old messages are removed on every node and pulls answer them as
// gone (minSeq), while the conversation goes on without a gap.
func TestPresenceAndRetentionAcrossThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const retention = 4 * time.Second
	procs := proctest.Launch(t, "n", 3, "-message-retention", retention.String())
	for _, p := range procs {
		p.WaitReady()
	}
	n1, n2, n3 := procs[0], procs[1], procs[2]
	for _, uid := range []string{"alice", "bob"} {
		mustRegister(t, n1.Client(), uid)
	}
	alice := relUser(t, n1, "alice")

	// Retention: messages sent through node 2 are removed on every node after it.
	sentAt := time.Now()
	admin2 := mustAdmin(t, n2)
	for i := range 5 {
		mustOK(t, admin2, "manager/send_msg", relSendBody(fmt.Sprintf("r%d", i), "alice", "bob", 1))
	}
	const conv = "si_alice_bob"
	if seqs, minSeq := pullState(t, alice, conv); time.Since(sentAt) < retention/2 && (len(seqs) != 5 || minSeq != 0) {
		t.Fatalf("right after the sends: got seqs %v minSeq %d, want 1..5 and 0", seqs, minSeq)
	}
	for _, p := range procs {
		c := mustAdmin(t, p)
		deadline := time.Now().Add(retention + 10*time.Second)
		for {
			seqs, minSeq := pullState(t, c, conv)
			if len(seqs) == 0 && minSeq == 6 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got seqs %v minSeq %d, want none and 6 after the retention", p.ID, seqs, minSeq)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	mustOK(t, alice, "msg/send_msg", relSendBody("after", "alice", "bob", 1))
	if seqs, minSeq := pullState(t, relUser(t, n3, "bob"), conv); len(seqs) != 1 || seqs[0] != 6 || minSeq != 6 {
		t.Fatalf("after a new send: got seqs %v minSeq %d, want [6] and 6", seqs, minSeq)
	}

	// Presence: bob connects to node 3 with a Web token.
	r := mustOK(t, n3.Client(), "auth/user_token", map[string]any{"secret": secret, "platform": 5, "uid": "bob"})
	var tok struct {
		Token string `json:"token"`
	}
	if err := r.DecodeData(&tok); err != nil {
		t.Fatal(err)
	}
	if a := onlineOf(t, alice, "bob", "alice"); a.Data[0].Status != "offline" || a.Data[1].Status != "offline" {
		t.Fatalf("before connecting: got %+v, want both offline", a)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+n3.HTTP+"/ws?token="+url.QueryEscape(tok.Token), nil)
	if err != nil {
		t.Fatalf("connect to n3: %v", err)
	}
	defer ws.Close()
	a := waitOnline(t, alice, "bob online through n1", func(a onlineAnswer) bool { return a.Data[0].Status == "online" }, "bob", "alice")
	d := a.Data[0].DetailPlatformStatus
	if len(d) != 1 || d[0].NodeID != "n3" || d[0].PlatformID != 5 || d[0].Platform != "Web" || d[0].ConnID == "" ||
		a.Data[1].Status != "offline" || len(a.UnreachableNodes) != 0 {
		t.Fatalf("bob on n3: got %+v", a)
	}
	// Every node gives the same answer.
	for _, p := range []*proc{n2, n3} {
		if b := onlineOf(t, mustAdmin(t, p), "bob"); b.Data[0].Status != "online" || b.Data[0].DetailPlatformStatus[0].NodeID != "n3" {
			t.Fatalf("through %s: got %+v", p.ID, b)
		}
	}
	_ = ws.Close()
	waitOnline(t, alice, "bob offline after disconnecting", func(a onlineAnswer) bool { return a.Data[0].Status == "offline" }, "bob")

	// A node that is down is reported, not an error.
	n2.Signal(syscall.SIGKILL)
	a = onlineOf(t, alice, "bob")
	if len(a.UnreachableNodes) != 1 || a.UnreachableNodes[0] != "n2" || a.Data[0].Status != "offline" {
		t.Fatalf("with n2 down: got %+v, want n2 unreachable", a)
	}
}
