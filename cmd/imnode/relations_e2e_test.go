package main

import (
	"testing"

	"github.com/imnode/imnode/apiclient"
)

// relUser is uid's own client on p.
func relUser(t *testing.T, p *proc, uid string) *apiclient.Client {
	t.Helper()
	tok, err := p.Client().TokenFor(secret, uid)
	if err != nil {
		t.Fatal(err)
	}
	return p.Client().WithToken(tok)
}

func relWantCode(t *testing.T, c *apiclient.Client, route string, body map[string]interface{}, code int) {
	t.Helper()
	r, err := c.Post(route, body)
	if err != nil {
		t.Fatalf("%s: %v", route, err)
	}
	if r.ErrCode != code {
		t.Fatalf("%s: errCode %d %s, want %d", route, r.ErrCode, r.ErrMsg, code)
	}
}

func relSendBody(op, from, to string, session int) map[string]interface{} {
	return map[string]interface{}{"operationID": op, "sendID": from, "recvID": to, "sessionType": session,
		"contentType": 101, "content": map[string]string{"text": "from " + from}}
}

// Every relation and group change made through one node is seen through the others, and
// its effect on sends holds on every node.
func TestRelationsAndGroupsAcrossThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	procs := startCluster(t, 3)
	n1, n2, n3 := procs[0], procs[1], procs[2]
	for _, uid := range []string{"alice", "bob", "carol"} {
		mustRegister(t, n1.Client(), uid)
	}
	// Friendship made on node 2, ended by bob himself on node 3, gone through node 1.
	mustOK(t, mustAdmin(t, n2), "friend/import_friend", map[string]interface{}{"operationID": "f1", "ownerUid": "alice", "uid": "bob"})
	mustOK(t, relUser(t, n3, "bob"), "friend/delete_friend", map[string]interface{}{"operationID": "f2", "ownerUid": "bob", "uid": "alice"})
	var isf struct {
		IsFriend bool `json:"isFriend"`
	}
	for _, p := range procs {
		if err := mustOK(t, relUser(t, p, "alice"), "friend/is_friend", map[string]interface{}{"operationID": "f3", "ownerUid": "alice", "uid": "bob"}).DecodeData(&isf); err != nil {
			t.Fatal(err)
		}
		if isf.IsFriend {
			t.Fatalf("%s: alice and bob still friends after bob ended it on n3", p.ID)
		}
	}

	// Block on node 1, the send through node 2 is refused; unblock on node 3, it goes through node 2.
	mustOK(t, mustAdmin(t, n1), "friend/add_blacklist", map[string]interface{}{"operationID": "b1", "ownerUid": "bob", "uid": "carol"})
	relWantCode(t, mustAdmin(t, n2), "manager/send_msg", relSendBody("s1", "carol", "bob", 1), 1302)
	mustOK(t, relUser(t, n3, "bob"), "friend/remove_blacklist", map[string]interface{}{"operationID": "b2", "ownerUid": "bob", "uid": "carol"})
	mustOK(t, mustAdmin(t, n2), "manager/send_msg", relSendBody("s2", "carol", "bob", 1))

	// A group renamed on node 2 and dismissed on node 3 refuses sends on node 1 and keeps
	// its history.
	r := mustOK(t, mustAdmin(t, n1), "group/create_group", map[string]interface{}{"operationID": "g1", "groupName": "team",
		"memberList": []map[string]interface{}{{"uid": "alice", "setRole": 1}, {"uid": "bob", "setRole": 0}}})
	var g struct {
		GroupID string `json:"groupID"`
	}
	if err := r.DecodeData(&g); err != nil {
		t.Fatal(err)
	}
	mustOK(t, relUser(t, n1, "bob"), "msg/send_msg", relSendBody("s3", "bob", g.GroupID, 2))
	mustOK(t, relUser(t, n2, "alice"), "group/set_group_info", map[string]interface{}{"operationID": "g2", "groupID": g.GroupID, "groupName": "renamed"})
	mustOK(t, relUser(t, n3, "alice"), "group/dismiss_group", map[string]interface{}{"operationID": "g3", "groupID": g.GroupID})
	relWantCode(t, relUser(t, n1, "bob"), "msg/send_msg", relSendBody("s4", "bob", g.GroupID, 2), 1204)
	var infos []struct {
		GroupName string `json:"groupName"`
		Status    int    `json:"status"`
	}
	for _, p := range procs {
		if err := mustOK(t, relUser(t, p, "bob"), "group/get_groups_info", map[string]interface{}{"operationID": "g4", "groupIDList": []string{g.GroupID}}).DecodeData(&infos); err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].GroupName != "renamed" || infos[0].Status != 2 {
			t.Fatalf("%s: group info %+v, want renamed and dismissed", p.ID, infos)
		}
		if got := pullTexts(t, mustAdmin(t, p), "sg_"+g.GroupID); len(got) != 1 {
			t.Fatalf("%s: dismissed group's history has %d messages, want 1", p.ID, len(got))
		}
	}
	var ac struct {
		Results []struct {
			UserID        string `json:"userID"`
			AccountStatus string `json:"accountStatus"`
		} `json:"results"`
	}
	if err := mustOK(t, mustAdmin(t, n3), "manager/account_check", map[string]interface{}{"operationID": "a1", "checkUidList": []string{"carol", "dave"}}).DecodeData(&ac); err != nil {
		t.Fatal(err)
	}
	if len(ac.Results) != 2 || ac.Results[0].AccountStatus != "registered" || ac.Results[1].AccountStatus != "unregistered" {
		t.Fatalf("account_check: %+v", ac)
	}
	waitSameDigest(t, procs)
}
