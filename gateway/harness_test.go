package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/hashicorp/raft"
	"github.com/imnode/imnode/fsm"
	"github.com/valyala/fasthttp"
)

// harness is one node's gateway over a real FSM, without raft: tests apply commands
// directly (as raft would, one index at a time) and talk to the gateway over TCP.
type harness struct {
	t    *testing.T
	f    *fsm.FSM
	gw   *Gateway
	addr string

	mu    sync.Mutex // serializes applies, as raft does
	index uint64
	// mute drops OnCommit calls, as a node that installs a snapshot never sees them.
	mute atomic.Bool
	ids  atomic.Uint64
	// beforeNewest, if set, runs at the start of the gateway's next NewestSeqs read (once).
	beforeNewest atomic.Pointer[func()]
}

// hookedStore is the FSM as the gateway's Store, with the harness's beforeNewest hook.
type hookedStore struct {
	*fsm.FSM
	h *harness
}

func (s hookedStore) NewestSeqs(uid string) ([]fsm.ConversationSeq, error) {
	if fn := s.h.beforeNewest.Swap(nil); fn != nil {
		(*fn)()
	}
	return s.FSM.NewestSeqs(uid)
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{t: t}
	h.gw = New(opts)
	f, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), fsm.Options{
		OnCommit: func(m []fsm.Message) {
			if !h.mute.Load() {
				h.gw.OnCommit(m)
			}
		},
		OnUsersDeleted: h.gw.OnUsersDeleted,
		OnNotices:      h.gw.OnNotices,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
	h.gw.Start(Deps{Store: hookedStore{f, h}, Verify: fakeVerify, API: h.fakeAPI})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/ws":
			h.gw.ServeWS(ctx)
		case "/demo":
			h.gw.ServeDemo(ctx)
		default:
			h.fakeAPI(ctx)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.gw.Close(ctx, CloseGoingAway, "test over")
		_ = srv.Shutdown()
		_ = f.Close()
	})
	return h
}

// fakeVerify accepts "tok:<uid>" for a user and "admin" for an administrator.
func fakeVerify(token string) (Identity, error) {
	if token == "admin" {
		return Identity{UID: "admin", Admin: true}, nil
	}
	if uid, ok := strings.CutPrefix(token, "tok:"); ok && uid != "" {
		return Identity{UID: uid}, nil
	}
	return Identity{}, &AuthError{Code: 1502, Msg: "token is invalid"}
}

func (h *harness) apply(typ fsm.CommandType, body interface{}) *fsm.Result {
	h.t.Helper()
	b, err := fsm.Encode(typ, nil, body)
	if err != nil {
		h.t.Fatal(err)
	}
	// Raft applies one entry at a time, in index order.
	h.mu.Lock()
	defer h.mu.Unlock()
	h.index++
	r, _ := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: b, AppendedAt: time.Now()}).(*fsm.Result)
	if r == nil {
		h.t.Fatalf("apply %s: no result", typ)
	}
	return r
}

func (h *harness) register(uids ...string) {
	for _, uid := range uids {
		if r := h.apply(fsm.CmdRegisterUser, fsm.RegisterUser{User: fsm.User{UID: uid, Name: uid}}); r.Error() != nil {
			h.t.Fatalf("register %s: %v", uid, r.Error())
		}
	}
}

func (h *harness) group(id string, owner string, members ...string) {
	specs := []fsm.MemberSpec{{UID: owner, Role: fsm.RoleOwner}}
	for _, m := range members {
		specs = append(specs, fsm.MemberSpec{UID: m})
	}
	if r := h.apply(fsm.CmdCreateGroup, fsm.CreateGroup{GroupID: id, Name: id, Members: specs}); r.Error() != nil {
		h.t.Fatalf("create group: %v", r.Error())
	}
}

func (h *harness) send(from, to string, session int32, text string) *fsm.Result {
	content, _ := json.Marshal(map[string]string{"text": text})
	r := h.apply(fsm.CmdSendMessage, fsm.SendMessage{
		MsgID: fmt.Sprintf("%032x", h.ids.Add(1)), SendID: from, RecvID: to,
		SessionType: session, ContentType: 101, Content: content,
	})
	if r.Error() != nil {
		h.t.Fatalf("send %s->%s: %v", from, to, r.Error())
	}
	return r
}

// fakeAPI stands in for httpapi: msg/send_msg and msg/pull_msg_by_seq with the envelope.
func (h *harness) fakeAPI(ctx *fasthttp.RequestCtx) {
	tok := string(ctx.Request.Header.Peek("token"))
	id, err := fakeVerify(tok)
	write := func(v map[string]any) {
		if _, ok := v["errCode"]; !ok {
			v["errCode"], v["errMsg"] = 0, ""
		}
		b, _ := json.Marshal(v)
		ctx.SetBody(b)
	}
	if err != nil {
		write(map[string]any{"errCode": 1502, "errMsg": "token is invalid"})
		return
	}
	switch string(ctx.Path()) {
	case "/msg/send_msg", "/manager/send_msg":
		var req struct {
			OperationID string          `json:"operationID"`
			SendID      string          `json:"sendID"`
			RecvID      string          `json:"recvID"`
			SessionType int32           `json:"sessionType"`
			Content     json.RawMessage `json:"content"`
		}
		if json.Unmarshal(ctx.Request.Body(), &req) != nil || req.OperationID == "" {
			write(map[string]any{"errCode": 1001, "errMsg": "operationID is required"})
			return
		}
		if !id.Admin && req.SendID != id.UID {
			write(map[string]any{"errCode": 1002, "errMsg": "not yourself"})
			return
		}
		b, _ := fsm.Encode(fsm.CmdSendMessage, nil, fsm.SendMessage{
			MsgID: fmt.Sprintf("%032x", h.ids.Add(1)), SendID: req.SendID, RecvID: req.RecvID,
			SessionType: req.SessionType, ContentType: 101, Content: req.Content})
		h.mu.Lock()
		h.index++
		r := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: b, AppendedAt: time.Now()}).(*fsm.Result)
		h.mu.Unlock()
		if r.Error() != nil {
			write(map[string]any{"errCode": 1203, "errMsg": r.Error().Error()})
			return
		}
		write(map[string]any{"msgID": r.MsgID, "seq": r.Seq, "sendTime": r.SendTime, "conversationID": r.ConversationID})
	case "/msg/pull_msg_by_seq":
		var req struct {
			ConversationID string `json:"conversationID"`
			BeginSeq       uint64 `json:"beginSeq"`
			EndSeq         uint64 `json:"endSeq"`
		}
		_ = json.Unmarshal(ctx.Request.Body(), &req)
		msgs, _ := h.f.PullMessages(req.ConversationID, req.BeginSeq, req.EndSeq, 0)
		out := []json.RawMessage{}
		for i := range msgs {
			out = append(out, encodeMessage(&msgs[i]))
		}
		write(map[string]any{"data": out})
	default:
		ctx.SetStatusCode(http.StatusNotFound)
	}
}

// client is a test WebSocket client. A reading client reads in the background (so it
// answers pings, and a read timeout in a test does not break the connection); a silent
// one reads only when the test asks.
type client struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan []byte
	err    chan error
}

func (h *harness) dial(token string, query ...string) (*client, *http.Response, error) {
	return h.dialMode(true, token, query...)
}

func (h *harness) dialMode(reading bool, token string, query ...string) (*client, *http.Response, error) {
	u := "ws://" + h.addr + "/ws?token=" + token
	for _, q := range query {
		if q != "" {
			u += "&" + q
		}
	}
	ws, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		return nil, resp, err
	}
	c := &client{t: h.t, ws: ws}
	h.t.Cleanup(func() { _ = ws.Close() })
	if reading {
		c.frames = make(chan []byte, 1<<16)
		c.err = make(chan error, 1)
		go func() {
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					c.err <- err
					return
				}
				c.frames <- b
			}
		}()
	}
	return c, resp, nil
}

func (h *harness) mustDial(token string, query ...string) *client {
	h.t.Helper()
	c, _, err := h.dial(token, query...)
	if err != nil {
		h.t.Fatalf("dial %s: %v", token, err)
	}
	return c
}

// mustDialSilent connects a client that reads nothing until the test asks.
func (h *harness) mustDialSilent(token string) *client {
	h.t.Helper()
	c, _, err := h.dialMode(false, token)
	if err != nil {
		h.t.Fatalf("dial %s: %v", token, err)
	}
	return c
}

func (c *client) sendJSON(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// frame is any server frame.
type frame struct {
	Type           string          `json:"type"`
	ReqID          json.RawMessage `json:"reqID"`
	ErrCode        int             `json:"errCode"`
	ErrMsg         string          `json:"errMsg"`
	ConversationID string          `json:"conversationID"`
	Seq            uint64          `json:"seq"`
	MsgID          string          `json:"msgID"`
	SendID         string          `json:"sendID"`
	Content        json.RawMessage `json:"content"`
	Data           json.RawMessage `json:"data"`
	// raw is the whole frame, for the members of notice frames.
	raw []byte
}

var errTimeout = errors.New("no frame before the timeout")

// next returns the next frame, or the connection's error, or errTimeout.
func (c *client) next(timeout time.Duration) (frame, error) {
	var f frame
	var b []byte
	if c.frames == nil {
		_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
		var err error
		if _, b, err = c.ws.ReadMessage(); err != nil {
			return f, err
		}
	} else {
		select {
		case b = <-c.frames:
		case err := <-c.err:
			c.err <- err
			return f, err
		case <-time.After(timeout):
			return f, errTimeout
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("bad frame %s: %v", b, err)
	}
	f.raw = b
	return f, nil
}

func (c *client) mustNext(timeout time.Duration) frame {
	c.t.Helper()
	f, err := c.next(timeout)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// msgs reads n message frames (skipping other types).
func (c *client) msgs(n int, timeout time.Duration) []frame {
	c.t.Helper()
	var out []frame
	deadline := time.Now().Add(timeout)
	for len(out) < n {
		f, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("after %d of %d messages: %v", len(out), n, err)
		}
		if f.Type == "msg" {
			out = append(out, f)
		}
	}
	return out
}

// quiet asserts that no message frame arrives within d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		f, err := c.next(time.Until(deadline))
		if err != nil {
			return
		}
		if f.Type == "msg" {
			c.t.Fatalf("got unexpected message %s #%d", f.ConversationID, f.Seq)
		}
	}
}

// closeCode waits for the connection to end and returns its close frame's code and text
// (-1 if it ended without one).
func (c *client) closeCode(timeout time.Duration) (int, string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_, err := c.next(time.Until(deadline))
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code, ce.Text
		}
		if err == errTimeout {
			break
		}
		return -1, err.Error()
	}
	c.t.Fatal("connection still open")
	return 0, ""
}
