package main

import (
	"syscall"
	"testing"

	"github.com/imnode/imnode/apiclient"
)

// msgView is the part of a pulled message these tests look at.
type msgView struct {
	Seq         uint64 `json:"seq"`
	MsgID       string `json:"msgID"`
	ContentType int32  `json:"contentType"`
	Revoked     bool   `json:"revoked"`
	Deleted     bool   `json:"deleted"`
}

func mustPull(t *testing.T, c *apiclient.Client, conv string, begin, end uint64) []msgView {
	t.Helper()
	var ms []msgView
	r := mustOK(t, c, "msg/pull_msg_by_seq", map[string]interface{}{"conversationID": conv, "beginSeq": begin, "endSeq": end})
	if err := r.DecodeData(&ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

type convView struct {
	ConversationID string `json:"conversationID"`
	MaxSeq         uint64 `json:"maxSeq"`
	HasReadSeq     uint64 `json:"hasReadSeq"`
	UnreadCount    uint64 `json:"unreadCount"`
	LatestMsg      *struct {
		Seq     uint64 `json:"seq"`
		Revoked bool   `json:"revoked"`
	} `json:"latestMsg"`
}

func mustConversations(t *testing.T, c *apiclient.Client, uid string) map[string]convView {
	t.Helper()
	var cs []convView
	r := mustOK(t, c, "conversation/get_all_conversations", map[string]interface{}{"uid": uid})
	if err := r.DecodeData(&cs); err != nil {
		t.Fatal(err)
	}
	out := map[string]convView{}
	for _, cv := range cs {
		out[cv.ConversationID] = cv
	}
	return out
}

// A revoke made through node 1 is seen on nodes 2 and 3 at the same seq, with no gap; a
// mark_as_read through one node lowers the unread count seen through another; both
// survive a node's restart (replay of its log).
func TestRevokeAndReadStateAcrossThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	procs := startCluster(t, 3)
	n1, n2, n3 := procs[0], procs[1], procs[2]
	for _, uid := range []string{"alice", "bob"} {
		mustRegister(t, n1.Client(), uid)
	}
	const conv = "si_alice_bob"
	for i, from := range []string{"alice", "bob", "alice"} {
		to := "bob"
		if from == "bob" {
			to = "alice"
		}
		mustOK(t, mustAdmin(t, procs[i]), "manager/send_msg", relSendBody("m"+string(rune('1'+i)), from, to, 1))
	}
	before := mustPull(t, mustAdmin(t, n2), conv, 1, 3)

	// alice revokes her seq 1 through node 1 with her own token.
	mustOK(t, relUser(t, n1, "alice"), "msg/revoke_msg", map[string]interface{}{"operationID": "r1", "conversationID": conv, "seq": 1})
	relWantCode(t, relUser(t, n2, "bob"), "msg/revoke_msg", map[string]interface{}{"operationID": "r2", "conversationID": conv, "seq": 3}, 1002)
	relWantCode(t, relUser(t, n3, "alice"), "msg/revoke_msg", map[string]interface{}{"operationID": "r3", "conversationID": conv, "seq": 1}, 1211)
	check := func(p *proc) {
		t.Helper()
		ms := mustPull(t, relUser(t, p, "bob"), conv, 1, 3)
		if len(ms) != 3 {
			t.Fatalf("%s: %d messages, want 3", p.ID, len(ms))
		}
		for i, m := range ms {
			if m.Seq != uint64(i+1) || m.MsgID != before[i].MsgID {
				t.Fatalf("%s: position %d is seq %d %s, want seq %d %s (no gap)", p.ID, i+1, m.Seq, m.MsgID, i+1, before[i].MsgID)
			}
			if revoked := i == 0; m.Revoked != revoked || (revoked && m.ContentType != 2101) {
				t.Fatalf("%s: seq %d revoked=%v contentType %d", p.ID, m.Seq, m.Revoked, m.ContentType)
			}
		}
	}
	for _, p := range procs {
		check(p)
	}

	// bob has 3 unread; he reads up to 2 through node 3, node 1 says 1 unread.
	if c := mustConversations(t, relUser(t, n1, "bob"), "bob")[conv]; c.UnreadCount != 3 || c.MaxSeq != 3 {
		t.Fatalf("bob's conversation on n1 before reading: %+v", c)
	}
	mustOK(t, relUser(t, n3, "bob"), "msg/mark_as_read", map[string]interface{}{"operationID": "k1", "uid": "bob", "conversationID": conv, "hasReadSeq": 2})
	mustOK(t, mustAdmin(t, n2), "msg/mark_as_read", map[string]interface{}{"operationID": "k2", "uid": "bob", "conversationID": conv, "hasReadSeq": 1})
	checkRead := func(p *proc) {
		t.Helper()
		c := mustConversations(t, relUser(t, p, "bob"), "bob")[conv]
		if c.UnreadCount != 1 || c.HasReadSeq != 2 || c.LatestMsg == nil || c.LatestMsg.Seq != 3 {
			t.Fatalf("bob's conversation on %s after reading to 2: %+v", p.ID, c)
		}
	}
	for _, p := range procs {
		checkRead(p)
	}

	// Per-user delete through node 2: bob's view through node 1 marks seq 3 deleted,
	// alice's does not.
	mustOK(t, relUser(t, n2, "bob"), "msg/delete_msgs", map[string]interface{}{"operationID": "d1", "uid": "bob", "conversationID": conv, "seqs": []int{3}})
	if ms := mustPull(t, relUser(t, n1, "bob"), conv, 3, 3); len(ms) != 1 || !ms[0].Deleted {
		t.Fatalf("bob's seq 3 after his delete: %+v", ms)
	}
	if ms := mustPull(t, relUser(t, n1, "alice"), conv, 3, 3); len(ms) != 1 || ms[0].Deleted {
		t.Fatalf("alice's seq 3 after bob's delete: %+v", ms)
	}

	// Node 3 restarts and replays: the same reads.
	waitSameDigest(t, procs)
	n3.Signal(syscall.SIGTERM)
	n3.Start()
	n3.WaitReady()
	check(n3)
	checkRead(n3)
	waitSameDigest(t, procs)
}
