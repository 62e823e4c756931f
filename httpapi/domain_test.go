package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/imnode/imnode/fsm"
)

// TestDomainErrors covers the outcomes the FSM decides. They are proposed (with their
// idempotency record, which is state), so "changes nothing" is checked on what the
// business reads show rather than on the digest.
func TestDomainErrors(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice", "bob", "carol")
	gid := e.createGroup("alice", "bob")
	e.ok("friend/add_blacklist", e.admin, map[string]any{"operationID": "bl", "ownerUid": "bob", "uid": "carol"})

	seqs := func(uid string) string {
		r := e.ok("msg/newest_seq", e.admin, map[string]any{"uid": uid})
		return string(r.Data)
	}
	before := seqs("carol") + seqs("bob") + seqs("alice")

	e.wantCode("manager/send_msg", e.admin, map[string]any{"operationID": "1", "sendID": "carol", "recvID": gid, "sessionType": 2, "contentType": 101, "content": map[string]any{"text": "x"}}, CodeNotInGroupYet)
	e.wantCode("manager/send_msg", e.admin, map[string]any{"operationID": "2", "sendID": "carol", "recvID": "bob", "sessionType": 1, "contentType": 101, "content": map[string]any{"text": "x"}}, CodeBlockedByPeer)
	e.wantCode("manager/send_msg", e.admin, map[string]any{"operationID": "3", "sendID": "alice", "recvID": "ffffffffffffffffffffffffffffffff", "sessionType": 2, "contentType": 101, "content": map[string]any{"text": "x"}}, CodeGroupNotFound)
	e.wantCode("manager/send_msg", e.admin, map[string]any{"operationID": "4", "sendID": "alice", "recvID": "nobody", "sessionType": 1, "contentType": 101, "content": map[string]any{"text": "x"}}, CodeUserNotFound)
	e.wantCode("manager/send_msg", e.admin, map[string]any{"operationID": "5", "sendID": "nobody", "recvID": "alice", "sessionType": 1, "contentType": 101, "content": map[string]any{"text": "x"}}, CodeUserNotFound)
	if after := seqs("carol") + seqs("bob") + seqs("alice"); after != before {
		t.Fatalf("failed sends changed conversations: %s, want %s", after, before)
	}

	e.wantCode("auth/user_register", "", map[string]any{"secret": "tuoyun", "platform": 1, "uid": "alice", "name": "other"}, CodeRegisteredAlready)
	if u, _, _ := e.b.f.User("alice"); u.Name != "name of alice" {
		t.Fatalf("duplicate register changed the user: name %q", u.Name)
	}
	e.wantCode("user/update_user_info", e.admin, map[string]any{"operationID": "6", "uid": "nobody", "name": "x"}, CodeUserNotFound)
	e.wantCode("group/invite_user_to_group", e.admin, map[string]any{"operationID": "7", "groupID": "nogroup", "uidList": []string{"carol"}, "reason": ""}, CodeGroupNotFound)
	e.wantCode("group/kick_group", e.admin, map[string]any{"operationID": "8", "groupID": "nogroup", "uidListInfo": []any{map[string]any{"userId": "bob"}}}, CodeGroupNotFound)
	e.wantCode("group/get_group_info", e.admin, map[string]any{"groupID": "nogroup"}, CodeGroupNotFound)
	e.wantCode("group/get_group_member_list", e.admin, map[string]any{"groupID": "nogroup"}, CodeGroupNotFound)
	e.wantCode("friend/import_friend", e.admin, map[string]any{"operationID": "9", "ownerUid": "alice", "uid": "nobody"}, CodeUserNotFound)
	e.wantCode("friend/import_friend", e.admin, map[string]any{"operationID": "10", "ownerUid": "nobody", "uid": "alice"}, CodeUserNotFound)
	e.wantCode("friend/add_blacklist", e.admin, map[string]any{"operationID": "11", "ownerUid": "alice", "uid": "nobody"}, CodeUserNotFound)
	e.wantCode("friend/get_friend_list", e.admin, map[string]any{"ownerUid": "nobody"}, CodeUserNotFound)
	e.wantCode("group/get_joined_group_list", e.admin, map[string]any{"uid": "nobody"}, CodeUserNotFound)
	e.wantCode("group/create_group", e.admin, map[string]any{"operationID": "12", "groupName": "g", "memberList": []any{map[string]any{"uid": "nobody", "setRole": 1}}}, CodeUserNotFound)

	r := e.ok("group/get_joined_group_list", e.admin, map[string]any{"uid": "carol"})
	if string(r.Data) != "[]" {
		t.Fatalf("carol's groups: got %s, want []", r.Data)
	}
	r = e.ok("friend/get_friend_list", e.admin, map[string]any{"ownerUid": "alice"})
	if string(r.Data) != "[]" {
		t.Fatalf("alice's friends: got %s, want []", r.Data)
	}
}

func TestListOutcomes(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice", "bob", "carol", "dave")
	gid := e.createGroup("alice", "bob")

	r := e.ok("group/invite_user_to_group", e.admin, map[string]any{"operationID": "i", "groupID": gid, "uidList": []string{"carol", "bob", "nobody"}, "reason": "r"})
	var res []uidResult
	r.data(t, &res)
	want := []uidResult{{"carol", 0}, {"bob", -1}, {"nobody", -1}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("invite: got %+v, want %+v", res, want)
	}
	r = e.ok("group/kick_group", e.admin, map[string]any{"operationID": "k", "groupID": gid, "uidListInfo": []any{map[string]any{"userId": "alice"}, map[string]any{"userId": "carol"}, map[string]any{"userId": "dave"}}})
	r.data(t, &res)
	want = []uidResult{{"alice", -1}, {"carol", 0}, {"dave", -1}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("kick: got %+v, want %+v", res, want)
	}

	r = e.ok("friend/import_friend", e.admin, map[string]any{"operationID": "f", "ownerUid": "alice", "uidList": []string{"bob", "nobody", "carol"}})
	var failed []string
	r.field(t, "failedUidList", &failed)
	if !reflect.DeepEqual(failed, []string{"nobody"}) {
		t.Fatalf("import: got failedUidList %v, want [nobody]", failed)
	}
	r = e.ok("friend/get_friend_list", e.admin, map[string]any{"ownerUid": "bob"})
	var friends []string
	r.data(t, &friends)
	if !reflect.DeepEqual(friends, []string{"alice"}) {
		t.Fatalf("friendship is mutual: bob's friends %v, want [alice]", friends)
	}

	r = e.ok("manager/delete_user", e.admin, map[string]any{"operationID": "d", "deleteUidList": []string{"dave"}})
	r.field(t, "failedUidList", &failed)
	if failed == nil || len(failed) != 0 {
		t.Fatalf("delete: got failedUidList %v, want []", failed)
	}
}

func TestUpdateOnlyPresentFields(t *testing.T) {
	e := newEnv(t, nil)
	e.ok("auth/user_register", "", map[string]any{"secret": "tuoyun", "platform": 1, "uid": "alice", "name": "Alice",
		"icon": "i", "gender": 2, "mobile": "m", "birth": "b", "email": "e", "ex": "x"})
	e.ok("user/update_user_info", e.admin, map[string]any{"operationID": "1", "uid": "alice", "email": "new@x", "gender": 0})
	r := e.ok("user/get_user_info", e.admin, map[string]any{"operationID": "2", "uidList": []string{"alice"}})
	var got []userInfo
	r.data(t, &got)
	want := []userInfo{{UID: "alice", Name: "Alice", Icon: "i", Gender: 0, Mobile: "m", Birth: "b", Email: "new@x", Ex: "x"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestReadShapes checks the read routes' shapes, and [] rather than null for empty lists.
func TestReadShapes(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice", "bob", "carol")
	r := e.ok("group/create_group", e.admin, map[string]any{"operationID": "c", "groupName": "G", "introduction": "I",
		"notification": "N", "faceUrl": "F", "memberList": []any{map[string]any{"uid": "alice", "setRole": 1}, map[string]any{"uid": "bob", "setRole": 2}}})
	var g groupIDResp
	r.data(t, &g)

	r = e.ok("group/get_group_info", e.admin, map[string]any{"groupID": g.GroupID})
	var info map[string]any
	r.data(t, &info)
	for k, v := range map[string]any{"groupID": g.GroupID, "groupName": "G", "introduction": "I", "notification": "N", "faceUrl": "F", "ownerUid": "alice", "memberCount": 2.0} {
		if info[k] != v {
			t.Fatalf("group info %s: got %v, want %v", k, info[k], v)
		}
	}
	if info["createTime"].(float64) <= 0 {
		t.Fatalf("group info: createTime %v", info["createTime"])
	}

	r = e.ok("group/get_group_member_list", e.admin, map[string]any{"groupID": g.GroupID})
	var members []memberInfo
	r.data(t, &members)
	if len(members) != 2 || members[0].UID != "alice" || members[0].RoleLevel != 1 || members[1].RoleLevel != 2 || members[0].JoinTime <= 0 || members[0].GroupID != g.GroupID {
		t.Fatalf("members: got %s", r.Data)
	}

	r = e.ok("group/get_joined_group_list", e.admin, map[string]any{"uid": "bob"})
	var joined []groupInfo
	r.data(t, &joined)
	if len(joined) != 1 || joined[0].GroupID != g.GroupID || joined[0].GroupName != "G" {
		t.Fatalf("joined: got %s", r.Data)
	}

	r = e.ok("msg/newest_seq", e.admin, map[string]any{"uid": "carol"})
	if string(r.Data) != `{"conversations":[]}` {
		t.Fatalf("newest_seq with no messages: got %s", r.Data)
	}
	r = e.ok("msg/pull_msg_by_seq", e.admin, map[string]any{"conversationID": "si_alice_bob", "beginSeq": 1, "endSeq": 10})
	if string(r.Data) != "[]" {
		t.Fatalf("pull of an empty conversation: got %s, want []", r.Data)
	}
	r = e.ok("friend/get_blacklist", e.admin, map[string]any{"ownerUid": "alice"})
	if string(r.Data) != "[]" {
		t.Fatalf("empty blacklist: got %s, want []", r.Data)
	}

	e.ok("manager/send_msg", e.admin, map[string]any{"operationID": "s1", "sendID": "alice", "recvID": "bob", "sessionType": 1,
		"senderNickName": "A", "senderFaceURL": "u", "contentType": 101, "content": map[string]any{"text": "one"}})
	e.ok("manager/send_msg", e.admin, map[string]any{"operationID": "s2", "sendID": "bob", "recvID": g.GroupID, "sessionType": 2,
		"forceList": []string{"alice"}, "contentType": 101, "content": map[string]any{"text": "two"}})
	e.ok("manager/send_msg", e.admin, map[string]any{"operationID": "s3", "sendID": "bob", "recvID": "alice", "sessionType": 1,
		"contentType": 101, "content": map[string]any{"text": "three"}})

	r = e.ok("msg/newest_seq", e.admin, map[string]any{"uid": "alice"})
	var cs conversationsResp
	r.data(t, &cs)
	got := map[string]uint64{}
	for _, c := range cs.Conversations {
		got[c.ConversationID] = c.MaxSeq
	}
	if want := map[string]uint64{"si_alice_bob": 2, "sg_" + g.GroupID: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("newest_seq: got %v, want %v", got, want)
	}

	r = e.ok("msg/pull_msg_by_seq", e.admin, map[string]any{"conversationID": "si_alice_bob", "beginSeq": 0, "endSeq": 100})
	var raw []map[string]json.RawMessage
	r.data(t, &raw)
	if len(raw) != 2 {
		t.Fatalf("pull: got %s, want 2 messages", r.Data)
	}
	for _, k := range []string{"conversationID", "seq", "msgID", "sendID", "recvID", "sessionType", "contentType", "content", "sendTime", "senderNickName", "senderFaceURL"} {
		if _, ok := raw[0][k]; !ok {
			t.Fatalf("pulled message %s has no %q", r.Data, k)
		}
	}
	var msgs []fsm.MessageView
	r.data(t, &msgs)
	if msgs[0].Seq != 1 || msgs[1].Seq != 2 || string(msgs[0].Content) != `{"text":"one"}` || msgs[0].SenderNickName != "A" ||
		msgs[1].SendID != "bob" || msgs[1].SendTime < msgs[0].SendTime {
		t.Fatalf("pull: got %s", r.Data)
	}
}
