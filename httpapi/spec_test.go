package httpapi

import (
	"encoding/json"
	"regexp"
	"testing"
)

// The requests of spec/server-api.md, verbatim.
const (
	specRegister = `{
  "secret": "tuoyun", 
  "platform": 1, 
  "uid": "d5645454517", 
  "name": "Zhang San",
  "icon": "https:oss.com.cn/head", 
  "gender": 1, 
  "mobile": "17812457845", 
  "birth": "1998.12.15", 
  "email": "xxxx@qq.com", 
  "ex": "xxx"
 }`
	specUserToken = `{
  "secret": "tuoyun", 
  "platform": 1, 
  "uid": "d5645454517"
 }`
	specCreateGroup = `{
    "memberList":[{"uid":"21979710c3fe454d","setRole":1},{"uid":"89b8924ea455a642","setRole":2}],
    "groupName":"groupName_on10",
    "introduction": "Introduction",
    "notification":"公告",
    "faceUrl":"url",
    "operationID":"1"
}`
	specInvite = `{
	"groupID": "f21f9f84c14f3a978352ff339f1a800a",
	"uidList": [
		 "f732156059eeb5d0"
	],
	"reason": "reason",
	"operationID": "1111111111111 "
}`
	specKick = `{
	"groupID": "56d274fad86685be3ea4ee70498eca61",
	"uidListInfo": [{
		"userId": "21979710c3fe454d"
	}],
	"operationID": "1111111111111 "
}`
	specImportFriend = `{
	"uid":"21979710c3fe454d",
	"operationID": "1111111222",
	"ownerUid" : "f732156059eeb5d0"
}`
	specAddBlacklist = `{	"uid":"21979710c3fe454d",	"operationID": "1111111222",	"ownerUid" : "f732156059eeb5d0"}`
	specUpdateUser   = `{
	"uid":"21979710c3fe454d",
	"operationID": "1111111222",
	"name":"sssssssssskkkkk"
}`
	specDeleteUser = ` {
    "operationID": "1111111222",
    "deleteUidList": [
        "123", 
        "343", 
        "456"
    ]
}`
	specGetUserInfo = ` {
    "operationID": "1111111222",
    "uidList":["123","3434"]
}`
	specGetAllUsers = ` {
    "operationID": "1111111222"
}`
	specSendMsg = `{
    "operationID": "1111111222", 
    "sendID": "1111111222", 
    "recvID": "1111111222", 
    "senderNickName": "Zhang San",
    "senderFaceURL": "http://www.head.com", 
    "forceList": [
        "122", 
        "223"
    ], 
    "content": {
        "text": "nihao"
    }, 
    "contentType": 101, 
    "sessionType": 1
}`
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestSpecRoutesVerbatim(t *testing.T) {
	e := newEnv(t, nil)
	e.register("21979710c3fe454d", "89b8924ea455a642", "f732156059eeb5d0", "123", "343", "3434", "1111111222")
	e.groupWithID("f21f9f84c14f3a978352ff339f1a800a", "21979710c3fe454d")
	e.groupWithID("56d274fad86685be3ea4ee70498eca61", "89b8924ea455a642", "21979710c3fe454d")

	t.Run("auth/user_register", func(t *testing.T) {
		e := e.with(t)
		r := e.ok("auth/user_register", "", specRegister)
		var d map[string]any
		r.data(t, &d)
		if d["uid"] != "d5645454517" || d["token"] == "" || d["expiredTime"].(float64) <= 0 {
			t.Fatalf("got data %v, want uid, token and expiredTime", d)
		}
	})
	t.Run("auth/user_token", func(t *testing.T) {
		e := e.with(t)
		r := e.ok("auth/user_token", "", specUserToken)
		var d tokenResp
		r.data(t, &d)
		if d.UID != "d5645454517" || d.Token == "" || d.ExpiredTime <= 0 {
			t.Fatalf("got data %+v, want uid, token and expiredTime", d)
		}
		// The token works for the user's own reads.
		e.ok("msg/newest_seq", d.Token, map[string]any{"uid": "d5645454517"})
	})
	t.Run("group/create_group", func(t *testing.T) {
		e := e.with(t)
		r := e.ok("group/create_group", e.admin, specCreateGroup)
		var d struct{ GroupID string }
		r.data(t, &d)
		if !hex32.MatchString(d.GroupID) {
			t.Fatalf("got groupID %q, want 32 hex", d.GroupID)
		}
	})
	t.Run("group/invite_user_to_group", func(t *testing.T) {
		e := e.with(t)
		r := e.ok("group/invite_user_to_group", e.admin, specInvite)
		var d []uidResult
		r.data(t, &d)
		if len(d) != 1 || d[0].UID != "f732156059eeb5d0" || d[0].Result != 0 {
			t.Fatalf("got data %s, want [{uid f732156059eeb5d0 result 0}]", r.Data)
		}
	})
	t.Run("group/kick_group", func(t *testing.T) {
		e := e.with(t)
		r := e.ok("group/kick_group", e.admin, specKick)
		var d []uidResult
		r.data(t, &d)
		if len(d) != 1 || d[0].UID != "21979710c3fe454d" || d[0].Result != 0 {
			t.Fatalf("got data %s, want [{uid 21979710c3fe454d result 0}]", r.Data)
		}
	})
	t.Run("friend/import_friend", func(t *testing.T) {
		e := e.with(t)
		e.ok("friend/import_friend", e.admin, specImportFriend)
		r := e.ok("friend/get_friend_list", e.admin, map[string]any{"ownerUid": "f732156059eeb5d0"})
		var d []string
		r.data(t, &d)
		if len(d) != 1 || d[0] != "21979710c3fe454d" {
			t.Fatalf("friends: got %v, want [21979710c3fe454d]", d)
		}
	})
	t.Run("friend/add_blacklist", func(t *testing.T) {
		e := e.with(t)
		e.ok("friend/add_blacklist", e.admin, specAddBlacklist)
		r := e.ok("friend/get_blacklist", e.admin, map[string]any{"ownerUid": "f732156059eeb5d0"})
		var d []string
		r.data(t, &d)
		if len(d) != 1 || d[0] != "21979710c3fe454d" {
			t.Fatalf("blacklist: got %v, want [21979710c3fe454d]", d)
		}
	})
	t.Run("user/update_user_info", func(t *testing.T) {
		e := e.with(t)
		e.ok("user/update_user_info", e.admin, specUpdateUser)
		u, _, _ := e.b.f.User("21979710c3fe454d")
		if u.Name != "sssssssssskkkkk" {
			t.Fatalf("name: got %q, want sssssssssskkkkk", u.Name)
		}
	})
	t.Run("user/get_user_info", func(t *testing.T) {
		e := e.with(t)
		r := e.ok("user/get_user_info", e.admin, specGetUserInfo)
		var d []map[string]any
		r.data(t, &d)
		if len(d) != 2 || d[0]["uid"] != "123" || d[1]["uid"] != "3434" {
			t.Fatalf("got %s, want users 123 and 3434", r.Data)
		}
		for _, k := range []string{"uid", "name", "icon", "gender", "mobile", "birth", "email", "ex"} {
			if _, ok := d[0][k]; !ok {
				t.Fatalf("user %s has no %q", r.Data, k)
			}
		}
	})
	t.Run("manager/get_all_users_uid", func(t *testing.T) {
		e := e.with(t)
		r := e.ok("manager/get_all_users_uid", e.admin, specGetAllUsers)
		var l []string
		r.field(t, "uidList", &l)
		if len(l) != 8 {
			t.Fatalf("got uidList %v, want the 8 registered users", l)
		}
	})
	t.Run("manager/send_msg", func(t *testing.T) {
		e := e.with(t)
		r := e.ok("manager/send_msg", e.admin, specSendMsg)
		var out struct {
			SendTime       int64  `json:"sendTime"`
			MsgID          string `json:"msgID"`
			Seq            uint64 `json:"seq"`
			ConversationID string `json:"conversationID"`
		}
		if err := json.Unmarshal(r.Raw, &out); err != nil {
			t.Fatal(err)
		}
		if out.SendTime <= 0 || !hex32.MatchString(out.MsgID) || out.Seq != 1 || out.ConversationID != "si_1111111222_1111111222" {
			t.Fatalf("got %s, want top-level sendTime, msgID, seq 1, conversationID", r.Raw)
		}
	})
	t.Run("manager/delete_user", func(t *testing.T) {
		e := e.with(t)
		r := e.ok("manager/delete_user", e.admin, specDeleteUser)
		var failed []string
		r.field(t, "failedUidList", &failed)
		if len(failed) != 1 || failed[0] != "456" {
			t.Fatalf("got failedUidList %v, want [456]", failed)
		}
	})
}
