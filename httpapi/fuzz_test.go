package httpapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzPostRoutes sends arbitrary bodies to every POST route, with an administrator's or a
// user's token, and checks what DESIGN.md promises of any input: the answer is a JSON
// envelope whose errCode is in the table, never CodeInternal (a handler's panic becomes
// one), and an answer with an error leaves the state as it was (the FSM's digest).
//
// The server runs on a one-node fake backend that starts with three users, a group and a
// few messages, and the inputs share it, as requests to a node do: a failure names the
// route and body, and may depend on what earlier inputs changed. `go test -run x -fuzz
// FuzzPostRoutes ./httpapi/` searches; plain `go test` runs the seeds.
func FuzzPostRoutes(f *testing.F) {
	e := newEnv(f, nil)
	e.register("u1", "u2", "u3")
	user := e.token("u1")
	group := e.createGroup("u1", "u2")
	e.ok("friend/import_friend", e.admin, map[string]any{"operationID": "seed-friends", "ownerUid": "u1", "uidList": []string{"u2"}})
	for i, to := range []string{"u2", "u3"} {
		e.send(e.admin, "u1", to, 1, fmt.Sprintf("seed-single-%d", i))
	}
	e.send(e.admin, "u1", group, 2, "seed-group")

	var names []string
	for path, rt := range e.s.routes {
		if rt.method == fasthttp.MethodPost {
			names = append(names, path)
		}
	}
	sort.Strings(names)
	known := map[int]bool{}
	for _, c := range []int{CodeOK, CodeArgs, CodeNoPermission, CodeRecordNotFound, CodeUserNotFound,
		CodeRegisteredAlready, CodeGroupNotFound, CodeNotInGroupYet, CodeGroupDismissed,
		CodeOwnerMustTransfer, CodeMutedInGroup, CodeNotFriend, CodeNotInBlacklist,
		CodeOwnerUntouchable, CodeMessageNotFound, CodeMessageRevoked, CodeNoSuchConversation,
		CodeCanNotAddYourself, CodeBlockedByPeer, CodeTokenExpired, CodeTokenInvalid,
		CodeTokenMalformed, CodeTokenNotExist} {
		known[c] = true
	}

	conv := "si_u1_u2" // the single chat's conversationID
	bodies := []string{
		`{}`,
		`{"secret":"tuoyun","platform":1,"uid":"u9","name":"n"}`,
		`{"uidList":["u1","u2"]}`,
		`{"ownerUid":"u1","uidList":["u3"]}`,
		`{"ownerUid":"u1","uid":"u3"}`,
		`{"groupID":"` + group + `","uidList":["u3"],"reason":"r"}`,
		`{"groupID":"` + group + `","uidListInfo":[{"userId":"u2"}]}`,
		`{"memberList":[{"uid":"u1","setRole":1},{"uid":"u3","setRole":0}],"groupName":"g2"}`,
		`{"sendID":"u1","recvID":"u2","sessionType":1,"contentType":101,"content":{"text":"hi"}}`,
		`{"sendID":"u1","recvID":"` + group + `","sessionType":2,"contentType":101,"content":{"text":"hi"}}`,
		`{"conversationID":"` + conv + `","beginSeq":1,"endSeq":10}`,
		`{"conversationID":"` + conv + `","seq":1,"uid":"u1"}`,
		`{"conversationID":"` + conv + `","seqs":[1,2],"uid":"u1"}`,
		`{"conversationID":"` + conv + `","hasReadSeq":1,"uid":"u1"}`,
		`{"conversationID":"` + conv + `","isPinned":true,"recvMsgOpt":1,"uid":"u1"}`,
		`{"groupID":"` + group + `","uid":"u2","mutedSeconds":60,"roleLevel":2}`,
		`{"groupID":"` + group + `","oldOwnerUid":"u1","newOwnerUid":"u2"}`,
		`{"groupID":"` + group + `","groupName":"n","introduction":"i"}`,
		`{"groupIDList":["` + group + `"]}`,
		`{"uid":"u1","name":"n","icon":"f","ex":"x"}`,
		`{"deleteUidList":["u3"]}`,
	}
	for i := range names {
		for j, b := range bodies {
			rest := b[1:] // after the opening brace
			if rest != "}" {
				rest = "," + rest
			}
			b = fmt.Sprintf(`{"operationID":"seed-%d-%d"`, i, j) + rest
			f.Add(uint8(i), (i+j)%2 == 0, []byte(b))
		}
	}

	h := e.s.Handler()
	ops := 0
	f.Fuzz(func(t *testing.T, route uint8, admin bool, body []byte) {
		name := names[int(route)%len(names)]
		tok := user
		if admin {
			tok = e.admin
		}
		te := e.with(t)
		before := te.dataDigest()
		ops++
		var req fasthttp.Request
		req.SetRequestURI("http://imnode" + name)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.Set("token", tok)
		req.Header.Set("operationID", fmt.Sprintf("fuzz-%d", ops))
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		h(&ctx)

		var env struct {
			ErrCode *int   `json:"errCode"`
			ErrMsg  string `json:"errMsg"`
		}
		raw := ctx.Response.Body()
		if err := json.Unmarshal(raw, &env); err != nil || env.ErrCode == nil {
			t.Fatalf("%s %q: HTTP %d, not an errCode envelope: %q", name, body, ctx.Response.StatusCode(), raw)
		}
		if !known[*env.ErrCode] {
			t.Fatalf("%s %q: HTTP %d errCode %d %q, not a code DESIGN.md lists for a bad input", name, body, ctx.Response.StatusCode(), *env.ErrCode, env.ErrMsg)
		}
		if *env.ErrCode != CodeOK {
			if after := te.dataDigest(); after != before {
				t.Fatalf("%s %q: errCode %d %q, but the state changed", name, body, *env.ErrCode, env.ErrMsg)
			}
		}
	})
}

// dataDigest is the FSM's DataDigest: what a request that fails must leave as it was.
func (e *env) dataDigest() string { e.t.Helper(); return e.mustDigest(e.b.f.DataDigest) }
