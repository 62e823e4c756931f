package main

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// fakeNode answers the routes imbench uses, keeping just enough state (users, groups,
// seqs) for setup and the workloads. failEvery > 0 makes every failEvery-th send answer
// 1801 with HTTP 503, the way a node without a leader does.
type fakeNode struct {
	failEvery int64

	mu       sync.Mutex
	users    map[string]string // uid → ex
	groups   map[string]int    // groupID → members
	seqs     map[string]int
	opIDs    map[string]bool
	dupOpIDs int
	calls    map[string]int
	sends    atomic.Int64
}

func newFakeNode() *fakeNode {
	return &fakeNode{users: map[string]string{}, groups: map[string]int{}, seqs: map[string]int{},
		opIDs: map[string]bool{}, calls: map[string]int{}}
}

func (n *fakeNode) count(route string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[route]
}

func reply(ctx *fasthttp.RequestCtx, status int, v map[string]any) {
	if _, ok := v["errCode"]; !ok {
		v["errCode"] = 0
		v["errMsg"] = ""
	}
	b, _ := json.Marshal(v)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func (n *fakeNode) handle(ctx *fasthttp.RequestCtx) {
	route := string(ctx.Path())[1:]
	var req struct {
		OperationID    string   `json:"operationID"`
		UID            string   `json:"uid"`
		Ex             *string  `json:"ex"`
		UIDList        []string `json:"uidList"`
		SendID         string   `json:"sendID"`
		RecvID         string   `json:"recvID"`
		SessionType    int      `json:"sessionType"`
		GroupID        string   `json:"groupID"`
		ConversationID string   `json:"conversationID"`
		MemberList     []struct {
			UID string `json:"uid"`
		} `json:"memberList"`
		Content struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
		reply(ctx, 200, map[string]any{"errCode": 1001, "errMsg": err.Error()})
		return
	}
	if route != "auth/user_register" && route != "auth/user_token" && string(ctx.Request.Header.Peek("token")) != "tok" {
		reply(ctx, 200, map[string]any{"errCode": 1507, "errMsg": "no token"})
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls[route]++
	if req.OperationID != "" {
		if n.opIDs[req.OperationID] {
			n.dupOpIDs++
		}
		n.opIDs[req.OperationID] = true
	}
	switch route {
	case "auth/user_register":
		if _, ok := n.users[req.UID]; ok {
			reply(ctx, 200, map[string]any{"errCode": 1102, "errMsg": "registered already"})
			return
		}
		ex := ""
		if req.Ex != nil {
			ex = *req.Ex
		}
		n.users[req.UID] = ex
		reply(ctx, 200, map[string]any{})
	case "auth/user_token":
		reply(ctx, 200, map[string]any{"data": map[string]any{"uid": req.UID, "token": "tok"}})
	case "user/update_user_info":
		if req.Ex != nil {
			n.users[req.UID] = *req.Ex
		}
		reply(ctx, 200, map[string]any{})
	case "user/get_user_info":
		var data []map[string]any
		for _, u := range req.UIDList {
			if ex, ok := n.users[u]; ok {
				data = append(data, map[string]any{"uid": u, "name": u, "ex": ex})
			}
		}
		reply(ctx, 200, map[string]any{"data": data})
	case "friend/import_friend":
		reply(ctx, 200, map[string]any{})
	case "group/create_group":
		id := fmt.Sprintf("%032x", len(n.groups)+1)
		n.groups[id] = len(req.MemberList)
		reply(ctx, 200, map[string]any{"data": map[string]any{"groupID": id}})
	case "group/invite_user_to_group":
		n.groups[req.GroupID] += len(req.UIDList)
		reply(ctx, 200, map[string]any{"data": []any{}})
	case "manager/send_msg":
		if k := n.sends.Add(1); n.failEvery > 0 && k%n.failEvery == 0 {
			reply(ctx, 503, map[string]any{"errCode": 1801, "errMsg": "no leader"})
			return
		}
		conv := "sg_" + req.RecvID
		if req.SessionType == 1 {
			conv = convID(req.SendID, req.RecvID)
		}
		n.seqs[conv]++
		reply(ctx, 200, map[string]any{"msgID": fmt.Sprintf("%032x", n.sends.Load()), "sendTime": 1, "seq": n.seqs[conv], "conversationID": conv})
	case "msg/pull_msg_by_seq":
		reply(ctx, 200, map[string]any{"data": []any{}})
	default:
		ctx.SetStatusCode(404)
	}
}

// serveInMemory serves n on an in-memory listener and returns its dialer.
func serveInMemory(t *testing.T, n *fakeNode) fasthttp.DialFunc {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: n.handle}
	go srv.Serve(ln) //nolint:errcheck // ends when the listener closes
	t.Cleanup(func() { _ = srv.Shutdown(); ln.Close() })
	return func(string) (net.Conn, error) { return ln.Dial() }
}

// serveLoopback serves n on a free loopback port in 31900-31999 and returns its address.
func serveLoopback(t *testing.T, n *fakeNode) string {
	t.Helper()
	for p := 31900; p < 32000; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		srv := &fasthttp.Server{Handler: n.handle}
		go srv.Serve(ln) //nolint:errcheck // ends when the listener closes
		t.Cleanup(func() { _ = srv.Shutdown() })
		return ln.Addr().String()
	}
	t.Skip("no free loopback port in 31900-31999")
	return ""
}
