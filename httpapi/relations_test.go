package httpapi

import (
	"fmt"
	"strings"
	"testing"
)

// relOp is a fresh operationID per call, so idempotency never hides a second request.
var relOpN int

func relOp() string { relOpN++; return fmt.Sprintf("rel-op-%d", relOpN) }

func TestRelationRoutes(t *testing.T) {
	e := newEnv(t, nil)
	e.register("a", "b", "c")
	ta, tb := e.token("a"), e.token("b")
	e.ok("friend/import_friend", e.admin, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "b"})

	var isf isFriendResp
	e.ok("friend/is_friend", tb, map[string]any{"operationID": relOp(), "ownerUid": "b", "uid": "a"}).data(t, &isf)
	if !isf.IsFriend {
		t.Fatalf("is_friend b->a: false after import")
	}
	var infos []friendInfo
	e.ok("friend/get_friends_info", ta, map[string]any{"operationID": relOp(), "ownerUid": "a", "uidList": []string{"b", "c"}}).data(t, &infos)
	if len(infos) != 2 || !infos[0].IsFriend || infos[0].FriendUser == nil || infos[0].FriendUser.Name != "name of b" || infos[1].IsFriend {
		t.Fatalf("get_friends_info: %+v", infos)
	}

	before := relReads(e, []string{"a", "b", "c"}, nil)
	for _, tc := range []struct {
		name, route, token string
		body               map[string]any
		code               int
	}{
		{"delete for another user", "friend/delete_friend", tb, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "b"}, CodeNoPermission},
		{"delete self", "friend/delete_friend", ta, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "a"}, CodeCanNotAddYourself},
		{"delete no operationID", "friend/delete_friend", ta, map[string]any{"ownerUid": "a", "uid": "b"}, CodeArgs},
		{"delete missing uid", "friend/delete_friend", ta, map[string]any{"operationID": relOp(), "ownerUid": "a"}, CodeArgs},
		{"delete unknown uid", "friend/delete_friend", ta, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "zz"}, CodeUserNotFound},
		{"delete a non-friend", "friend/delete_friend", ta, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "c"}, CodeNotFriend},
		{"unblock not blocked", "friend/remove_blacklist", ta, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "c"}, CodeNotInBlacklist},
		{"unblock for another", "friend/remove_blacklist", tb, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "c"}, CodeNoPermission},
		{"is_friend of another", "friend/is_friend", tb, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "b"}, CodeNoPermission},
		{"is_friend unknown", "friend/is_friend", ta, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "zz"}, CodeUserNotFound},
		{"friends_info empty list", "friend/get_friends_info", ta, map[string]any{"operationID": relOp(), "ownerUid": "a", "uidList": []string{}}, CodeArgs},
		{"account_check by a user", "manager/account_check", ta, map[string]any{"operationID": relOp(), "checkUidList": []string{"a"}}, CodeNoPermission},
		{"account_check empty", "manager/account_check", e.admin, map[string]any{"operationID": relOp(), "checkUidList": []string{}}, CodeArgs},
		{"account_check duplicate", "manager/account_check", e.admin, map[string]any{"operationID": relOp(), "checkUidList": []string{"a", "a"}}, CodeArgs},
		{"account_check no list", "manager/account_check", e.admin, map[string]any{"operationID": relOp()}, CodeArgs},
		{"account_check both lists", "manager/account_check", e.admin, map[string]any{"operationID": relOp(), "uidList": []string{"a"}, "checkUidList": []string{"a"}}, CodeArgs},
		{"account_check uidList not a list", "manager/account_check", e.admin, map[string]any{"operationID": relOp(), "uidList": "a"}, CodeArgs},
	} {
		t.Run(tc.name, func(t *testing.T) { e.with(t).wantCode(tc.route, tc.token, tc.body, tc.code) })
	}
	if relReads(e, []string{"a", "b", "c"}, nil) != before {
		t.Fatalf("refused relation requests changed the state")
	}

	// Users end their own friendship; it is gone on both sides.
	e.ok("friend/delete_friend", ta, map[string]any{"operationID": relOp(), "ownerUid": "a", "uid": "b"})
	e.ok("friend/is_friend", e.admin, map[string]any{"operationID": relOp(), "ownerUid": "b", "uid": "a"}).data(t, &isf)
	if isf.IsFriend {
		t.Fatalf("is_friend b->a after a ended it: true")
	}

	// Unblock, then the blocked sender can send again.
	e.ok("friend/add_blacklist", e.admin, map[string]any{"operationID": relOp(), "ownerUid": "b", "uid": "c"})
	e.wantCode("manager/send_msg", e.admin, relSend("c", "b", 1), CodeBlockedByPeer)
	e.ok("friend/remove_blacklist", tb, map[string]any{"operationID": relOp(), "ownerUid": "b", "uid": "c"})
	e.ok("manager/send_msg", e.admin, relSend("c", "b", 1))

	var ac accountCheckResp
	e.ok("manager/account_check", e.admin, map[string]any{"operationID": relOp(), "checkUidList": []string{"a", "nobody"}}).data(t, &ac)
	if len(ac.Results) != 2 || ac.Results[0] != (accountStatus{"a", "registered"}) || ac.Results[1] != (accountStatus{"nobody", "unregistered"}) {
		t.Fatalf("account_check: %+v", ac)
	}
	// uidList, the name the issue and the spec's other uid lists use, answers the same.
	var ac2 accountCheckResp
	e.ok("manager/account_check", e.admin, map[string]any{"operationID": relOp(), "uidList": []string{"a", "nobody"}}).data(t, &ac2)
	if len(ac2.Results) != 2 || ac2.Results[0] != ac.Results[0] || ac2.Results[1] != ac.Results[1] {
		t.Fatalf("account_check with uidList: %+v, want %+v", ac2, ac)
	}
}

// relReads is what the read routes would answer about uids and groups: refused writes
// leave it unchanged (the digest changes, since a refusal's idempotency record is kept).
func relReads(e *env, uids []string, groups []string) string {
	e.t.Helper()
	f := e.b.f
	out := ""
	for _, uid := range uids {
		fr, err1 := f.Friends(uid)
		bl, err2 := f.Blacklist(uid)
		js, err3 := f.JoinedGroups(uid)
		if err := firstErr(err1, err2, err3); err != nil {
			e.t.Fatal(err)
		}
		out += fmt.Sprintf("%s: %v %v %+v\n", uid, fr, bl, js)
	}
	for _, g := range groups {
		gi, err1 := f.Group(g)
		ms, err2 := f.GroupMembers(g)
		if err := firstErr(err1, err2); err != nil {
			e.t.Fatal(err)
		}
		out += fmt.Sprintf("%s: %+v %+v\n", g, gi, ms)
	}
	return out
}

func relSend(from, to string, session int) map[string]any {
	return map[string]any{"operationID": relOp(), "sendID": from, "recvID": to, "sessionType": session,
		"contentType": 101, "content": map[string]any{"text": "hi from " + from}}
}

func TestGroupManagementRoutes(t *testing.T) {
	e := newEnv(t, nil)
	e.register("o", "m1", "m2", "out")
	to, t1, t2, tout := e.token("o"), e.token("m1"), e.token("m2"), e.token("out")
	g := e.createGroup("o", "m1", "m2")

	e.ok("group/set_group_info", to, map[string]any{"operationID": relOp(), "groupID": g, "notification": "welcome"})
	var infos []groupInfo
	e.ok("group/get_groups_info", t1, map[string]any{"operationID": relOp(), "groupIDList": []string{g}}).data(t, &infos)
	if len(infos) != 1 || infos[0].Notification != "welcome" || infos[0].GroupName != "g" || infos[0].Status != 0 {
		t.Fatalf("get_groups_info: %+v", infos)
	}

	before := relReads(e, []string{"o", "m1", "m2", "out"}, []string{g})
	for _, tc := range []struct {
		name, route, token string
		body               map[string]any
		code               int
	}{
		{"set info by a member", "group/set_group_info", t1, map[string]any{"operationID": relOp(), "groupID": g, "groupName": "x"}, CodeNoPermission},
		{"set info nothing", "group/set_group_info", to, map[string]any{"operationID": relOp(), "groupID": g}, CodeArgs},
		{"set info empty name", "group/set_group_info", to, map[string]any{"operationID": relOp(), "groupID": g, "groupName": ""}, CodeArgs},
		{"set info unknown group", "group/set_group_info", e.admin, map[string]any{"operationID": relOp(), "groupID": "nope", "groupName": "x"}, CodeGroupNotFound},
		{"owner quits", "group/quit_group", to, map[string]any{"operationID": relOp(), "groupID": g, "uid": "o"}, CodeOwnerMustTransfer},
		{"quit for another", "group/quit_group", t1, map[string]any{"operationID": relOp(), "groupID": g, "uid": "m2"}, CodeNoPermission},
		{"outsider quits", "group/quit_group", tout, map[string]any{"operationID": relOp(), "groupID": g, "uid": "out"}, CodeNotInGroupYet},
		{"transfer by a member", "group/transfer_group", t1, map[string]any{"operationID": relOp(), "groupID": g, "oldOwnerUid": "o", "newOwnerUid": "m1"}, CodeNoPermission},
		{"transfer to an outsider", "group/transfer_group", to, map[string]any{"operationID": relOp(), "groupID": g, "oldOwnerUid": "o", "newOwnerUid": "out"}, CodeNotInGroupYet},
		{"transfer wrong old owner", "group/transfer_group", e.admin, map[string]any{"operationID": relOp(), "groupID": g, "oldOwnerUid": "m1", "newOwnerUid": "m2"}, CodeOwnerUntouchable},
		{"dismiss by a member", "group/dismiss_group", t1, map[string]any{"operationID": relOp(), "groupID": g}, CodeNoPermission},
		{"mute by a member", "group/mute_group_member", t1, map[string]any{"operationID": relOp(), "groupID": g, "uid": "m2", "mutedSeconds": 60}, CodeNoPermission},
		{"mute the owner", "group/mute_group_member", e.admin, map[string]any{"operationID": relOp(), "groupID": g, "uid": "o", "mutedSeconds": 60}, CodeOwnerUntouchable},
		{"mute zero", "group/mute_group_member", to, map[string]any{"operationID": relOp(), "groupID": g, "uid": "m2", "mutedSeconds": 0}, CodeArgs},
		{"mute no seconds", "group/mute_group_member", to, map[string]any{"operationID": relOp(), "groupID": g, "uid": "m2"}, CodeArgs},
		{"mute an outsider", "group/mute_group_member", to, map[string]any{"operationID": relOp(), "groupID": g, "uid": "out", "mutedSeconds": 60}, CodeNotInGroupYet},
		{"role to owner", "group/set_group_member_info", to, map[string]any{"operationID": relOp(), "groupID": g, "uid": "m1", "roleLevel": 1}, CodeArgs},
		{"role by a member", "group/set_group_member_info", t2, map[string]any{"operationID": relOp(), "groupID": g, "uid": "m1", "roleLevel": 2}, CodeNoPermission},
		{"role of the owner", "group/set_group_member_info", e.admin, map[string]any{"operationID": relOp(), "groupID": g, "uid": "o", "roleLevel": 0}, CodeOwnerUntouchable},
		{"groups_info not a member", "group/get_groups_info", tout, map[string]any{"operationID": relOp(), "groupIDList": []string{g}}, CodeNoPermission},
		{"groups_info unknown", "group/get_groups_info", e.admin, map[string]any{"operationID": relOp(), "groupIDList": []string{g, "nope"}}, CodeGroupNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { e.with(t).wantCode(tc.route, tc.token, tc.body, tc.code) })
	}
	if relReads(e, []string{"o", "m1", "m2", "out"}, []string{g}) != before {
		t.Fatalf("refused group requests changed the state")
	}

	// Mute: the member's send is refused until cancelled.
	e.ok("group/mute_group_member", to, map[string]any{"operationID": relOp(), "groupID": g, "uid": "m2", "mutedSeconds": 3600})
	e.wantCode("msg/send_msg", t2, relSend("m2", g, 2), CodeMutedInGroup)
	var members []memberInfo
	e.ok("group/get_group_member_list", to, map[string]any{"operationID": relOp(), "groupID": g}).data(t, &members)
	for _, m := range members {
		if m.UID == "m2" && m.MuteEndTime == 0 {
			t.Fatalf("m2's muteEndTime is 0 while muted")
		}
	}
	e.ok("group/cancel_mute_group_member", to, map[string]any{"operationID": relOp(), "groupID": g, "uid": "m2"})
	e.ok("msg/send_msg", t2, relSend("m2", g, 2))

	// Roles, transfer, quit, dismiss.
	e.ok("group/set_group_member_info", to, map[string]any{"operationID": relOp(), "groupID": g, "uid": "m1", "roleLevel": 2})
	e.ok("group/set_group_info", t1, map[string]any{"operationID": relOp(), "groupID": g, "groupName": "by admin"})
	e.ok("group/transfer_group", to, map[string]any{"operationID": relOp(), "groupID": g, "oldOwnerUid": "o", "newOwnerUid": "m1"})
	e.ok("group/quit_group", to, map[string]any{"operationID": relOp(), "groupID": g, "uid": "o"})
	e.ok("group/dismiss_group", t1, map[string]any{"operationID": relOp(), "groupID": g})
	e.wantCode("msg/send_msg", t2, relSend("m2", g, 2), CodeGroupDismissed)
	e.wantCode("group/set_group_info", e.admin, map[string]any{"operationID": relOp(), "groupID": g, "groupName": "x"}, CodeGroupDismissed)
	e.ok("group/get_groups_info", t2, map[string]any{"operationID": relOp(), "groupIDList": []string{g}}).data(t, &infos)
	if infos[0].Status != 2 || infos[0].OwnerUID != "m1" || infos[0].GroupName != "by admin" || infos[0].MemberCount != 2 {
		t.Fatalf("dismissed group: %+v", infos[0])
	}
	// History stays readable by its members.
	r := e.ok("msg/pull_msg_by_seq", t2, map[string]any{"operationID": relOp(), "conversationID": "sg_" + g, "beginSeq": 1, "endSeq": 1})
	if !strings.Contains(string(r.Raw), `"seq":1`) {
		t.Fatalf("pull of the dismissed group's history: %s", r.Raw)
	}
}
