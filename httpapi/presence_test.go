package httpapi

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/imnode/imnode/node"
)

func TestGetUsersOnlineStatus(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.register("bob", "alice")
	var asked [][]string
	e.b.onlineFn = func(ctx context.Context, uids []string) (node.Presence, error) {
		asked = append(asked, uids)
		return node.Presence{Conns: []node.Conn{
			{UID: "alice", Platform: 1, ConnID: 3, NodeID: "node1", Since: 1_700_000_000_123_000_000},
			{UID: "alice", Platform: 5, ConnID: 9, NodeID: "node3", Since: 1_700_000_001_000_000_000},
			{UID: "carol", Platform: 0, ConnID: 1, NodeID: "node2"},
		}, Unreachable: []string{"node4"}}, nil
	}
	want := `{"errCode":0,"errMsg":"","data":[` +
		`{"userID":"bob","status":"offline","detailPlatformStatus":[]},` +
		`{"userID":"alice","status":"online","detailPlatformStatus":[` +
		`{"platform":"IOS","platformID":1,"status":"online","connID":"3","nodeID":"node1","connectedAt":1700000000123},` +
		`{"platform":"Web","platformID":5,"status":"online","connID":"9","nodeID":"node3","connectedAt":1700000001000}]},` +
		`{"userID":"carol","status":"online","detailPlatformStatus":[` +
		`{"platform":"Unknown","platformID":0,"status":"online","connID":"1","nodeID":"node2","connectedAt":0}]}],` +
		`"unreachableNodes":["node4"]}`
	// An administrator and any user (about anyone, as in OpenIM) get the same answer.
	for _, tok := range []string{e.admin, alice} {
		r := e.ok("user/get_users_online_status", tok, map[string]any{"operationID": "op", "uidList": []string{"bob", "alice", "carol"}})
		if string(r.Raw) != want {
			t.Fatalf("got  %s\nwant %s", r.Raw, want)
		}
	}
	if !reflect.DeepEqual(asked[0], []string{"bob", "alice", "carol"}) {
		t.Fatalf("asked the backend for %v", asked[0])
	}

	// Nobody unreachable is [], not null.
	e.b.onlineFn = nil
	r := e.ok("user/get_users_online_status", alice, map[string]any{"uidList": []string{"bob"}})
	if want := `{"errCode":0,"errMsg":"","data":[{"userID":"bob","status":"offline","detailPlatformStatus":[]}],"unreachableNodes":[]}`; string(r.Raw) != want {
		t.Fatalf("got  %s\nwant %s", r.Raw, want)
	}
}

func TestGetUsersOnlineStatusRefuses(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice")
	calls := 0
	e.b.onlineFn = func(ctx context.Context, uids []string) (node.Presence, error) {
		calls++
		return node.Presence{}, nil
	}
	tooMany := make([]string, 101)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("u%d", i)
	}
	for _, tc := range []struct {
		name  string
		token string
		body  any
		code  int
	}{
		{"no uidList", e.admin, map[string]any{"operationID": "x"}, CodeArgs},
		{"empty uidList", e.admin, map[string]any{"uidList": []string{}}, CodeArgs},
		{"101 uids", e.admin, map[string]any{"uidList": tooMany}, CodeArgs},
		{"empty uid", e.admin, map[string]any{"uidList": []string{"a", ""}}, CodeArgs},
		{"long uid", e.admin, map[string]any{"uidList": []string{strings.Repeat("u", 65)}}, CodeArgs},
		{"duplicate", e.admin, map[string]any{"uidList": []string{"a", "a"}}, CodeArgs},
		{"uidList not a list", e.admin, `{"uidList":"a"}`, CodeArgs},
		{"no token", "", map[string]any{"uidList": []string{"a"}}, CodeTokenNotExist},
		{"bad token", "nope", map[string]any{"uidList": []string{"a"}}, CodeTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.wantCode("user/get_users_online_status", tc.token, tc.body, tc.code)
		})
	}
	if calls != 0 {
		t.Fatalf("the backend was asked %d times, want never", calls)
	}
	// A backend failure is a 500, not a made-up offline.
	e.b.onlineFn = func(ctx context.Context, uids []string) (node.Presence, error) {
		return node.Presence{}, fmt.Errorf("raft is shut down")
	}
	e.wantCode("user/get_users_online_status", e.admin, map[string]any{"uidList": []string{"alice"}}, CodeInternal)
}
