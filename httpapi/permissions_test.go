package httpapi

import "testing"

// TestUserTokenPermissions walks the permission model of doc.go with alice's own token.
func TestUserTokenPermissions(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice", "bob", "carol", "a_b", "b", "a")
	alice := e.token("alice")
	ab := e.token("a_b")
	shared := e.createGroup("bob", "alice")
	foreign := e.createGroup("bob", "carol")
	e.send(e.admin, "bob", "carol", 1, "bc")
	e.send(e.admin, "bob", "alice", 1, "ba")
	e.send(e.admin, "bob", foreign, 2, "bf")
	e.send(e.admin, "a_b", "b", 1, "ab-b")

	const ok, denied = 0, CodeNoPermission
	cases := []struct {
		name  string
		token string
		route string
		body  map[string]any
		code  int
	}{
		{"profiles are public", alice, "user/get_user_info", map[string]any{"operationID": "1", "uidList": []string{"bob", "carol"}}, ok},
		{"own friends", alice, "friend/get_friend_list", map[string]any{"ownerUid": "alice"}, ok},
		{"others' friends", alice, "friend/get_friend_list", map[string]any{"ownerUid": "bob"}, denied},
		{"own blacklist", alice, "friend/get_blacklist", map[string]any{"ownerUid": "alice"}, ok},
		{"others' blacklist", alice, "friend/get_blacklist", map[string]any{"ownerUid": "bob"}, denied},
		{"own groups", alice, "group/get_joined_group_list", map[string]any{"uid": "alice"}, ok},
		{"others' groups", alice, "group/get_joined_group_list", map[string]any{"uid": "carol"}, denied},
		{"own newest seq", alice, "msg/newest_seq", map[string]any{"uid": "alice"}, ok},
		{"others' newest seq", alice, "msg/newest_seq", map[string]any{"uid": "bob"}, denied},
		{"info of own group", alice, "group/get_group_info", map[string]any{"groupID": shared}, ok},
		{"info of another group", alice, "group/get_group_info", map[string]any{"groupID": foreign}, denied},
		{"info of no group", alice, "group/get_group_info", map[string]any{"groupID": "nogroup"}, denied},
		{"members of own group", alice, "group/get_group_member_list", map[string]any{"groupID": shared}, ok},
		{"members of another group", alice, "group/get_group_member_list", map[string]any{"groupID": foreign}, denied},
		{"pull own single", alice, "msg/pull_msg_by_seq", map[string]any{"conversationID": "si_alice_bob", "beginSeq": 1, "endSeq": 9}, ok},
		{"pull others' single", alice, "msg/pull_msg_by_seq", map[string]any{"conversationID": "si_bob_carol", "beginSeq": 1, "endSeq": 9}, denied},
		{"pull own group", alice, "msg/pull_msg_by_seq", map[string]any{"conversationID": "sg_" + shared, "beginSeq": 1, "endSeq": 9}, ok},
		{"pull another group", alice, "msg/pull_msg_by_seq", map[string]any{"conversationID": "sg_" + foreign, "beginSeq": 1, "endSeq": 9}, denied},
		// uids with '_' cannot borrow a conversation: si_a_b_b is a_b with b, not a with b_b.
		{"underscore uid own", ab, "msg/pull_msg_by_seq", map[string]any{"conversationID": "si_a_b_b", "beginSeq": 1, "endSeq": 9}, ok},
		{"underscore prefix trick", e.token("b"), "msg/pull_msg_by_seq", map[string]any{"conversationID": "si_a_b_b", "beginSeq": 1, "endSeq": 9}, ok},
		{"underscore other trick", ab, "msg/pull_msg_by_seq", map[string]any{"conversationID": "si_a_bx_c", "beginSeq": 1, "endSeq": 9}, denied},
		{"send as self", alice, "msg/send_msg", map[string]any{"operationID": "s1", "sendID": "alice", "recvID": shared, "sessionType": 2, "contentType": 101, "content": map[string]any{"text": "hi"}}, ok},
		{"send as bob", alice, "msg/send_msg", map[string]any{"operationID": "s2", "sendID": "bob", "recvID": "alice", "sessionType": 1, "contentType": 101, "content": map[string]any{"text": "hi"}}, denied},
		{"send to a foreign group", alice, "msg/send_msg", map[string]any{"operationID": "s3", "sendID": "alice", "recvID": foreign, "sessionType": 2, "contentType": 101, "content": map[string]any{"text": "hi"}}, CodeNotInGroupYet},
		{"admin route", alice, "manager/send_msg", map[string]any{"operationID": "s4", "sendID": "alice", "recvID": "bob", "sessionType": 1, "contentType": 101, "content": map[string]any{"text": "hi"}}, denied},
		{"admin update", alice, "user/update_user_info", map[string]any{"operationID": "u", "uid": "alice", "name": "x"}, denied},
		{"admin all users", alice, "manager/get_all_users_uid", map[string]any{"operationID": "a"}, denied},
		{"cluster route", alice, "cluster/remove_node", map[string]any{"nodeID": "n2"}, denied},

		{"admin reads anyone's friends", e.admin, "friend/get_friend_list", map[string]any{"ownerUid": "bob"}, ok},
		{"admin reads any group", e.admin, "group/get_group_member_list", map[string]any{"groupID": foreign}, ok},
		{"admin pulls any conversation", e.admin, "msg/pull_msg_by_seq", map[string]any{"conversationID": "si_bob_carol", "beginSeq": 1, "endSeq": 9}, ok},
		{"admin sends as anyone on msg/send_msg", e.admin, "msg/send_msg", map[string]any{"operationID": "s5", "sendID": "carol", "recvID": "bob", "sessionType": 1, "contentType": 101, "content": map[string]any{"text": "hi"}}, ok},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.with(t).wantCode(c.route, c.token, c.body, c.code)
		})
	}
	// "a" with "b_b" would have the same conversationID as "a_b" with "b"; "a" never took
	// part, so it reads nothing of it.
	r := e.ok("msg/pull_msg_by_seq", e.token("a"), map[string]any{"conversationID": "si_a_b_b", "beginSeq": 1, "endSeq": 9})
	if string(r.Data) != "[]" {
		t.Fatalf("a pulled a_b's conversation with b: got %s, want []", r.Data)
	}
	r = e.ok("msg/pull_msg_by_seq", ab, map[string]any{"conversationID": "si_a_b_b", "beginSeq": 1, "endSeq": 9})
	if string(r.Data) == "[]" {
		t.Fatalf("a_b cannot read its own conversation with b")
	}
	if r := e.do("GET", "/cluster/status", alice, nil); r.ErrCode != denied {
		t.Fatalf("cluster/status with a user token: got %d, want %d", r.ErrCode, denied)
	}
}
