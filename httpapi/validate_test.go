package httpapi

import (
	"strings"
	"testing"

	"github.com/imnode/imnode/fsm"
)

// TestBadInputChangesNothing sends every kind of bad request of DESIGN.md §3 that is
// caught before proposing: each gets its errCode, nothing is proposed and the state digest
// does not move.
func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, nil)
	userTok := e.register("alice", "bob")
	gid := e.createGroup("alice", "bob")
	long := func(n int) string { return strings.Repeat("x", n) }
	reg := func(kv ...any) map[string]any {
		m := map[string]any{"secret": "tuoyun", "platform": 1, "uid": "new1", "name": "n"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	msg := func(kv ...any) map[string]any {
		m := map[string]any{"operationID": "op", "sendID": "alice", "recvID": "bob", "sessionType": 1,
			"contentType": 101, "content": map[string]any{"text": "hi"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name  string
		route string
		token string
		body  any
		code  int
	}{
		{"wrong secret", "auth/user_register", "", reg("secret", "nope"), CodeNoPermission},
		{"missing secret", "auth/user_register", "", reg("secret", nil), CodeArgs},
		{"secret over 32", "auth/user_register", "", reg("secret", long(33)), CodeArgs},
		{"token wrong secret", "auth/user_token", "", map[string]any{"secret": "x", "platform": 1, "uid": "alice"}, CodeNoPermission},
		{"platform 0", "auth/user_register", "", reg("platform", 0), CodeArgs},
		{"platform 8", "auth/user_register", "", reg("platform", 8), CodeArgs},
		{"platform string", "auth/user_register", "", reg("platform", "1"), CodeArgs},
		{"missing uid", "auth/user_register", "", reg("uid", nil), CodeArgs},
		{"empty uid", "auth/user_register", "", reg("uid", ""), CodeArgs},
		{"uid over 64", "auth/user_register", "", reg("uid", long(65)), CodeArgs},
		{"uid control char", "auth/user_register", "", reg("uid", "a\nb"), CodeArgs},
		{"uid number", "auth/user_register", "", reg("uid", 12), CodeArgs},
		{"missing name", "auth/user_register", "", reg("name", nil), CodeArgs},
		{"name over 64", "auth/user_register", "", reg("name", long(65)), CodeArgs},
		{"icon over 1024", "auth/user_register", "", reg("icon", long(1025)), CodeArgs},
		{"gender 3", "auth/user_register", "", reg("gender", 3), CodeArgs},
		{"gender -1", "auth/user_register", "", reg("gender", -1), CodeArgs},
		{"mobile over 32", "auth/user_register", "", reg("mobile", long(33)), CodeArgs},
		{"birth over 16", "auth/user_register", "", reg("birth", long(17)), CodeArgs},
		{"email over 64", "auth/user_register", "", reg("email", long(65)), CodeArgs},
		{"ex over 1024", "auth/user_register", "", reg("ex", long(1025)), CodeArgs},
		{"malformed JSON", "auth/user_register", "", `{"secret":"tuoyun",`, CodeArgs},
		{"JSON array", "auth/user_register", "", `[1,2]`, CodeArgs},
		{"empty body", "manager/send_msg", e.admin, ``, CodeArgs},

		{"no token", "manager/get_all_users_uid", "", map[string]any{"operationID": "x"}, CodeTokenNotExist},
		{"malformed token", "manager/get_all_users_uid", "not-a-jwt", map[string]any{"operationID": "x"}, CodeTokenMalformed},
		{"user token on admin route", "manager/get_all_users_uid", userTok, map[string]any{"operationID": "x"}, CodeNoPermission},
		{"user token on manager/send_msg", "manager/send_msg", userTok, msg(), CodeNoPermission},
		{"user token on create_group", "group/create_group", userTok, map[string]any{}, CodeNoPermission},

		{"missing operationID", "manager/get_all_users_uid", e.admin, map[string]any{}, CodeArgs},
		{"operationID over 128", "manager/get_all_users_uid", e.admin, map[string]any{"operationID": long(129)}, CodeArgs},
		{"update gender 5", "user/update_user_info", e.admin, map[string]any{"operationID": "x", "uid": "alice", "gender": 5}, CodeArgs},
		{"update name over 64", "user/update_user_info", e.admin, map[string]any{"operationID": "x", "uid": "alice", "name": long(65)}, CodeArgs},
		{"update missing uid", "user/update_user_info", e.admin, map[string]any{"operationID": "x", "name": "n"}, CodeArgs},
		{"delete empty list", "manager/delete_user", e.admin, map[string]any{"operationID": "x", "deleteUidList": []string{}}, CodeArgs},
		{"delete duplicate", "manager/delete_user", e.admin, map[string]any{"operationID": "x", "deleteUidList": []string{"alice", "alice"}}, CodeArgs},
		{"get_user_info no list", "user/get_user_info", e.admin, map[string]any{"operationID": "x"}, CodeArgs},
		{"get_user_info list of numbers", "user/get_user_info", e.admin, map[string]any{"operationID": "x", "uidList": []int{1}}, CodeArgs},

		{"create no members", "group/create_group", e.admin, map[string]any{"operationID": "x", "groupName": "g"}, CodeArgs},
		{"create no owner", "group/create_group", e.admin, map[string]any{"operationID": "x", "groupName": "g", "memberList": []any{map[string]any{"uid": "alice", "setRole": 0}}}, CodeArgs},
		{"create two owners", "group/create_group", e.admin, map[string]any{"operationID": "x", "groupName": "g", "memberList": []any{map[string]any{"uid": "alice", "setRole": 1}, map[string]any{"uid": "bob", "setRole": 1}}}, CodeArgs},
		{"create role 3", "group/create_group", e.admin, map[string]any{"operationID": "x", "groupName": "g", "memberList": []any{map[string]any{"uid": "alice", "setRole": 1}, map[string]any{"uid": "bob", "setRole": 3}}}, CodeArgs},
		{"create duplicate member", "group/create_group", e.admin, map[string]any{"operationID": "x", "groupName": "g", "memberList": []any{map[string]any{"uid": "alice", "setRole": 1}, map[string]any{"uid": "alice", "setRole": 0}}}, CodeArgs},
		{"create no name", "group/create_group", e.admin, map[string]any{"operationID": "x", "memberList": []any{map[string]any{"uid": "alice", "setRole": 1}}}, CodeArgs},
		{"create name over 128", "group/create_group", e.admin, map[string]any{"operationID": "x", "groupName": long(129), "memberList": []any{map[string]any{"uid": "alice", "setRole": 1}}}, CodeArgs},
		{"invite no reason", "group/invite_user_to_group", e.admin, map[string]any{"operationID": "x", "groupID": gid, "uidList": []string{"bob"}}, CodeArgs},
		{"invite no list", "group/invite_user_to_group", e.admin, map[string]any{"operationID": "x", "groupID": gid, "reason": ""}, CodeArgs},
		{"kick empty userId", "group/kick_group", e.admin, map[string]any{"operationID": "x", "groupID": gid, "uidListInfo": []any{map[string]any{"userId": ""}}}, CodeArgs},
		{"import self", "friend/import_friend", e.admin, map[string]any{"operationID": "x", "ownerUid": "alice", "uid": "alice"}, CodeCanNotAddYourself},
		{"import self in list", "friend/import_friend", e.admin, map[string]any{"operationID": "x", "ownerUid": "alice", "uidList": []string{"bob", "alice"}}, CodeCanNotAddYourself},
		{"import no friend", "friend/import_friend", e.admin, map[string]any{"operationID": "x", "ownerUid": "alice"}, CodeArgs},
		{"blacklist self", "friend/add_blacklist", e.admin, map[string]any{"operationID": "x", "ownerUid": "alice", "uid": "alice"}, CodeCanNotAddYourself},

		{"sessionType 3", "manager/send_msg", e.admin, msg("sessionType", 3), CodeArgs},
		{"no sessionType", "manager/send_msg", e.admin, msg("sessionType", nil), CodeArgs},
		{"contentType 113", "manager/send_msg", e.admin, msg("contentType", 113), CodeArgs},
		{"contentType 100", "manager/send_msg", e.admin, msg("contentType", 100), CodeArgs},
		{"no content", "manager/send_msg", e.admin, msg("content", nil), CodeArgs},
		{"content string", "manager/send_msg", e.admin, msg("content", `{"text":"hi"}`), CodeArgs},
		{"content array", "manager/send_msg", e.admin, msg("content", []string{"hi"}), CodeArgs},
		{"text missing", "manager/send_msg", e.admin, msg("content", map[string]any{"data": "x"}), CodeArgs},
		{"text empty", "manager/send_msg", e.admin, msg("content", map[string]any{"text": ""}), CodeArgs},
		{"text number", "manager/send_msg", e.admin, msg("content", map[string]any{"text": 5}), CodeArgs},
		{"custom without data", "manager/send_msg", e.admin, msg("contentType", 110, "content", map[string]any{"text": "x"}), CodeArgs},
		{"picture without sourcePicture", "manager/send_msg", e.admin, msg("contentType", 102, "content", map[string]any{"text": "x"}), CodeArgs},
		{"file without fileName", "manager/send_msg", e.admin, msg("contentType", 105, "content", map[string]any{"sourceUrl": "u"}), CodeArgs},
		{"location latitude 91", "manager/send_msg", e.admin, msg("contentType", 109, "content", map[string]any{"longitude": 1, "latitude": 91}), CodeArgs},
		{"location string", "manager/send_msg", e.admin, msg("contentType", 109, "content", map[string]any{"longitude": "1", "latitude": 2}), CodeArgs},
		{"quote without quoteMessage", "manager/send_msg", e.admin, msg("contentType", 114, "content", map[string]any{"text": "x"}), CodeArgs},
		{"missing sendID", "manager/send_msg", e.admin, msg("sendID", nil), CodeArgs},
		{"recvID over 64", "manager/send_msg", e.admin, msg("recvID", long(65)), CodeArgs},
		{"missing operationID on send", "manager/send_msg", e.admin, msg("operationID", nil), CodeArgs},
		{"forceList duplicate", "manager/send_msg", e.admin, msg("forceList", []string{"a", "a"}), CodeArgs},
		{"user sends as another", "msg/send_msg", userTok, msg("sendID", "alice"), CodeNoPermission},

		{"pull end below begin", "msg/pull_msg_by_seq", e.admin, map[string]any{"conversationID": "si_alice_bob", "beginSeq": 5, "endSeq": 1}, CodeArgs},
		{"pull no beginSeq", "msg/pull_msg_by_seq", e.admin, map[string]any{"conversationID": "si_alice_bob", "endSeq": 1}, CodeArgs},
		{"pull negative seq", "msg/pull_msg_by_seq", e.admin, map[string]any{"conversationID": "si_alice_bob", "beginSeq": -1, "endSeq": 1}, CodeArgs},
		{"pull bad conversationID", "msg/pull_msg_by_seq", e.admin, map[string]any{"conversationID": "alice_bob", "beginSeq": 1, "endSeq": 1}, CodeArgs},
		{"remove_node no nodeID", "cluster/remove_node", e.admin, map[string]any{"operationID": "x"}, CodeArgs},
	}
	before := e.digest()
	proposals := e.b.proposals.Load()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.with(t).post(c.route, c.token, c.body)
			if r.ErrCode != c.code {
				t.Fatalf("got errCode %d %q, want %d", r.ErrCode, r.ErrMsg, c.code)
			}
			if r.ErrMsg == "" {
				t.Fatalf("errCode %d with an empty errMsg", r.ErrCode)
			}
			if r.Status != 200 {
				t.Fatalf("got HTTP %d, want 200 for a business outcome", r.Status)
			}
		})
	}
	if got := e.digest(); got != before {
		t.Fatalf("digest moved: bad requests changed the state")
	}
	if got := e.b.proposals.Load(); got != proposals {
		t.Fatalf("bad requests proposed %d commands, want 0", got-proposals)
	}
}

// TestErrMsgNamesTheProblem checks that errMsg says which field and which limit.
func TestErrMsgNamesTheProblem(t *testing.T) {
	e := newEnv(t, nil)
	r := e.wantCode("auth/user_register", "", map[string]any{"secret": "tuoyun", "platform": 1, "uid": strings.Repeat("u", 65), "name": ""}, CodeArgs)
	if !strings.Contains(r.ErrMsg, "uid") || !strings.Contains(r.ErrMsg, "64") {
		t.Fatalf("got errMsg %q, want it to name uid and the limit 64", r.ErrMsg)
	}
	r = e.wantCode("auth/user_register", "", map[string]any{"secret": "tuoyun", "platform": "1", "uid": "u", "name": ""}, CodeArgs)
	if !strings.Contains(r.ErrMsg, "platform") {
		t.Fatalf("got errMsg %q, want it to name platform", r.ErrMsg)
	}
	r = e.wantCode("manager/send_msg", e.admin, map[string]any{"operationID": "o", "sendID": "a", "recvID": "b", "sessionType": 1, "contentType": 102, "content": map[string]any{}}, CodeArgs)
	if !strings.Contains(r.ErrMsg, "sourcePicture") {
		t.Fatalf("got errMsg %q, want it to name sourcePicture", r.ErrMsg)
	}
}

// TestContentTypes sends one valid content of every supported type and reads it back as
// the compact object it was sent as.
func TestContentTypes(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice", "bob")
	contents := map[int]string{
		101: `{"text":"nihao"}`,
		102: `{"sourcePicture":{"url":"http://p","width":1},"bigPicture":{}}`,
		103: `{"sourceUrl":"http://s","duration":3}`,
		104: `{"videoUrl":"http://v"}`,
		105: `{"sourceUrl":"http://f","fileName":"a.txt"}`,
		106: `{"text":"@bob hi","atUserList":["bob"]}`,
		107: `{"multiMessage":[{"text":"a"}],"title":"t"}`,
		108: `{"userID":"bob"}`,
		109: `{"longitude":-122.4,"latitude":37.7,"description":"sf"}`,
		110: `{"data":"","description":"d"}`,
		111: `{"revokeMsgID":"x"}`,
		112: `{"msgIDList":["x"]}`,
		114: `{"text":"re","quoteMessage":{"msgID":"x"}}`,
	}
	seq := uint64(0)
	for ct := 101; ct <= 114; ct++ {
		c, ok := contents[ct]
		if !ok {
			continue
		}
		seq++
		spaced := strings.ReplaceAll(c, "{", "{ \n ") // whitespace the server compacts away
		body := `{"operationID":"ct` + itoa3(ct) + `","sendID":"alice","recvID":"bob","sessionType":1,"contentType":` + itoa3(ct) + `,"content":` + spaced + `}`
		e.ok("manager/send_msg", e.admin, body)
		r := e.ok("msg/pull_msg_by_seq", e.admin, map[string]any{"conversationID": "si_alice_bob", "beginSeq": seq, "endSeq": seq})
		var msgs []fsm.MessageView
		r.data(t, &msgs)
		if len(msgs) != 1 || string(msgs[0].Content) != c || msgs[0].ContentType != int32(ct) {
			t.Fatalf("contentType %d: got %s, want content %s", ct, r.Data, c)
		}
	}
}

func itoa3(i int) string {
	return string([]byte{byte('0' + i/100), byte('0' + i/10%10), byte('0' + i%10)})
}
