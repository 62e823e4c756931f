package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/node"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// fakeBackend applies proposals straight to a real FSM, like a one-node cluster without
// raft. Function fields, when set, replace a method (rqlite's MockStore).
type fakeBackend struct {
	f *fsm.FSM

	mu    sync.Mutex
	index uint64
	log   [][]byte // every applied command, log index i+1

	// leader, when set, makes this a follower: ConsistentRead catches up with its log.
	leader *fakeBackend

	proposeFn        func(ctx context.Context, cmd []byte) (*fsm.Result, error)
	consistentReadFn func(ctx context.Context) error
	removeServerFn   func(ctx context.Context, id string) error
	backupFn         func(w io.Writer) error
	internalFn       func(path string, body []byte) (int, []byte)
	onlineFn         func(ctx context.Context, uids []string) (node.Presence, error)

	ready     atomic.Bool
	proposals atomic.Int64
	reads     atomic.Int64
	internals atomic.Int64
}

func (b *fakeBackend) Propose(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	b.proposals.Add(1)
	if b.proposeFn != nil {
		return b.proposeFn(ctx, cmd)
	}
	return b.apply(cmd)
}

func (b *fakeBackend) apply(cmd []byte) (*fsm.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index++
	b.log = append(b.log, cmd)
	out := b.f.Apply(&raft.Log{Index: b.index, Type: raft.LogCommand, Data: cmd, AppendedAt: time.Now()})
	switch v := out.(type) {
	case *fsm.Result:
		return v, nil
	case error:
		return nil, v
	}
	return nil, errors.New("fsm returned no result")
}

func (b *fakeBackend) ConsistentRead(ctx context.Context) error {
	b.reads.Add(1)
	if b.consistentReadFn != nil {
		return b.consistentReadFn(ctx)
	}
	if b.leader != nil {
		b.leader.mu.Lock()
		entries := append([][]byte(nil), b.leader.log...)
		b.leader.mu.Unlock()
		for len(b.log) < len(entries) {
			if _, err := b.apply(entries[len(b.log)]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *fakeBackend) FSM() *fsm.FSM { return b.f }

func (b *fakeBackend) Status() node.Status {
	return node.Status{NodeID: "node1", State: "leader", LeaderID: "node1", AppliedIndex: b.f.AppliedIndex()}
}

func (b *fakeBackend) RemoveServer(ctx context.Context, id string) error {
	if b.removeServerFn != nil {
		return b.removeServerFn(ctx, id)
	}
	return node.ErrUnknownServer
}

func (b *fakeBackend) Backup(w io.Writer) error {
	if b.backupFn != nil {
		return b.backupFn(w)
	}
	_, err := io.WriteString(w, "backup-bytes")
	return err
}

func (b *fakeBackend) HandleInternal(path string, body []byte) (int, []byte) {
	b.internals.Add(1)
	if b.internalFn != nil {
		return b.internalFn(path, body)
	}
	return 200, append([]byte(path+":"), body...)
}

func (b *fakeBackend) Ready() bool { return b.ready.Load() }

func (b *fakeBackend) OnlineStatus(ctx context.Context, uids []string) (node.Presence, error) {
	if b.onlineFn != nil {
		return b.onlineFn(ctx, uids)
	}
	return node.Presence{}, nil
}

func mustFakeBackend(t testing.TB) *fakeBackend {
	t.Helper()
	f, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), fsm.Options{})
	if err != nil {
		t.Fatalf("open fsm: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return &fakeBackend{f: f}
}

// env is one API server on an in-memory listener with its fake backend.
type env struct {
	t      testing.TB
	cfg    config.Config
	b      *fakeBackend
	s      *Server
	client *fasthttp.Client
	ln     *fasthttputil.InmemoryListener
	admin  string // an administrator's token
}

func testConfig() config.Config {
	cfg := config.Default()
	cfg.ApplyTimeout = config.Duration(2 * time.Second)
	cfg.ReadTimeout = config.Duration(2 * time.Second)
	cfg.MaxBodyBytes = 64 << 10
	return cfg
}

// newEnv starts a server; edit changes the configuration first.
func newEnv(t testing.TB, edit func(*config.Config)) *env {
	t.Helper()
	return newEnvWith(t, mustFakeBackend(t), edit, nil)
}

func newEnvWith(t testing.TB, b *fakeBackend, edit func(*config.Config), logger *slog.Logger) *env {
	t.Helper()
	cfg := testConfig()
	if edit != nil {
		edit(&cfg)
	}
	s := New(cfg, b, logger)
	return startEnv(t, cfg, b, s)
}

func startEnv(t testing.TB, cfg config.Config, b *fakeBackend, s *Server) *env {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	e := &env{t: t, cfg: cfg, b: b, s: s, ln: ln, client: &fasthttp.Client{
		Dial: func(string) (net.Conn, error) { return ln.Dial() },
	}}
	e.admin = e.token(cfg.AppManagerUID[0])
	return e
}

// with returns e reporting to t, for subtests.
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// resp is a decoded answer.
type resp struct {
	Status  int
	ErrCode int             `json:"errCode"`
	ErrMsg  string          `json:"errMsg"`
	Data    json.RawMessage `json:"data"`
	Raw     []byte          `json:"-"`
	Header  map[string]string
}

// field decodes a top-level field of the answer into v.
func (r *resp) field(t testing.TB, name string, v any) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Raw, &m); err != nil {
		t.Fatalf("answer %s is not a JSON object: %v", r.Raw, err)
	}
	raw, ok := m[name]
	if !ok {
		t.Fatalf("answer %s has no field %q", r.Raw, name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("field %s of %s: %v", name, r.Raw, err)
	}
}

func (r *resp) data(t testing.TB, v any) {
	t.Helper()
	r.field(t, "data", v)
}

// do sends one request. body is sent as is when it is a string or []byte, else as JSON.
func (e *env) do(method, path, token string, body any, hdr ...string) *resp {
	e.t.Helper()
	req := fasthttp.AcquireRequest()
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.SetRequestURI("http://imnode" + path)
	req.Header.SetMethod(method)
	if token != "" {
		req.Header.Set("token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	switch v := body.(type) {
	case nil:
	case string:
		req.SetBodyString(v)
	case []byte:
		req.SetBody(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			e.t.Fatalf("marshal: %v", err)
		}
		req.SetBody(b)
	}
	if err := e.client.DoTimeout(req, res, 10*time.Second); err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	out := &resp{Status: res.StatusCode(), Raw: append([]byte(nil), res.Body()...), Header: map[string]string{}}
	for k, v := range res.Header.All() {
		out.Header[string(k)] = string(v)
	}
	if bytes.HasPrefix(out.Raw, []byte("{")) {
		if err := json.Unmarshal(out.Raw, out); err != nil {
			e.t.Fatalf("%s %s: bad envelope %s: %v", method, path, out.Raw, err)
		}
	}
	return out
}

func (e *env) post(route, token string, body any) *resp {
	e.t.Helper()
	return e.do(fasthttp.MethodPost, "/"+route, token, body)
}

// ok posts and fails the test unless errCode is 0.
func (e *env) ok(route, token string, body any) *resp {
	e.t.Helper()
	r := e.post(route, token, body)
	if r.ErrCode != 0 || r.Status != 200 {
		e.t.Fatalf("%s: got HTTP %d errCode %d %q, want 0", route, r.Status, r.ErrCode, r.ErrMsg)
	}
	return r
}

// wantCode posts and checks errCode.
func (e *env) wantCode(route, token string, body any, code int) *resp {
	e.t.Helper()
	r := e.post(route, token, body)
	if r.ErrCode != code {
		e.t.Fatalf("%s %v: got errCode %d %q, want %d", route, body, r.ErrCode, r.ErrMsg, code)
	}
	return r
}

// token gets a token for uid from auth/user_token.
func (e *env) token(uid string) string {
	e.t.Helper()
	r := e.ok("auth/user_token", "", map[string]any{"secret": e.cfg.Secret, "platform": 1, "uid": uid})
	var d tokenResp
	r.data(e.t, &d)
	return d.Token
}

// register registers users and returns the token of the last one.
func (e *env) register(uids ...string) string {
	e.t.Helper()
	var tok string
	for _, uid := range uids {
		r := e.ok("auth/user_register", "", map[string]any{"secret": e.cfg.Secret, "platform": 1, "uid": uid, "name": "name of " + uid})
		var d tokenResp
		r.data(e.t, &d)
		tok = d.Token
	}
	return tok
}

// createGroup creates a group through the API, owner first, and returns its ID.
func (e *env) createGroup(owner string, members ...string) string {
	e.t.Helper()
	list := []map[string]any{{"uid": owner, "setRole": 1}}
	for _, m := range members {
		list = append(list, map[string]any{"uid": m, "setRole": 0})
	}
	r := e.ok("group/create_group", e.admin, map[string]any{"operationID": "cg-" + owner + time.Now().String(), "groupName": "g", "memberList": list})
	var d groupIDResp
	r.data(e.t, &d)
	return d.GroupID
}

// groupWithID creates a group with a chosen ID by proposing directly, for the spec's
// requests that name fixed groupIDs.
func (e *env) groupWithID(id, owner string, members ...string) {
	e.t.Helper()
	ms := []fsm.MemberSpec{{UID: owner, Role: fsm.RoleOwner}}
	for _, m := range members {
		ms = append(ms, fsm.MemberSpec{UID: m, Role: fsm.RoleMember})
	}
	cmd, err := fsm.Encode(fsm.CmdCreateGroup, nil, fsm.CreateGroup{GroupID: id, Name: "spec group", Members: ms})
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.b.apply(cmd)
	if err != nil || res.Error() != nil {
		e.t.Fatalf("create group %s: %v %v", id, err, res.Error())
	}
}

func (e *env) digest() string { e.t.Helper(); return e.mustDigest(e.b.f.Digest) }

// mustDigest returns fn's digest (FSM.Digest or FSM.DataDigest) or fails the test.
func (e *env) mustDigest(fn func() (string, error)) string {
	e.t.Helper()
	d, err := fn()
	if err != nil {
		e.t.Fatalf("digest: %v", err)
	}
	return d
}

func (e *env) send(token, from, to string, sessionType int, opID string) *resp {
	e.t.Helper()
	return e.post("manager/send_msg", token, map[string]any{
		"operationID": opID, "sendID": from, "recvID": to, "sessionType": sessionType,
		"contentType": 101, "content": map[string]any{"text": "hi from " + from},
	})
}

func TestHealthAndRouting(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.do("GET", "/healthz", "", nil); r.Status != 200 || r.ErrCode != 0 {
		t.Fatalf("healthz: got %d %s, want 200", r.Status, r.Raw)
	}
	if r := e.do("GET", "/readyz", "", nil); r.Status != 503 || r.ErrCode != CodeClusterUnavailable {
		t.Fatalf("readyz not ready: got %d %s, want 503", r.Status, r.Raw)
	}
	e.b.ready.Store(true)
	if r := e.do("GET", "/readyz", "", nil); r.Status != 200 {
		t.Fatalf("readyz ready: got %d %s, want 200", r.Status, r.Raw)
	}
	r := e.do("GET", "/auth/user_register", "", nil)
	if r.Status != 405 || r.ErrCode != CodeArgs || r.Header["Allow"] != "POST" {
		t.Fatalf("wrong method: got %d %s Allow %q, want 405 with Allow POST", r.Status, r.Raw, r.Header["Allow"])
	}
	if r := e.do("POST", "/no/such_route", "", "{}"); r.Status != 404 || r.ErrCode != CodeArgs {
		t.Fatalf("unknown route: got %d %s, want 404", r.Status, r.Raw)
	}
	if r := e.do("POST", "/debug/pprof/", e.admin, nil); r.Status != 404 {
		t.Fatalf("pprof when disabled: got %d, want 404", r.Status)
	}
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, nil)
	before := e.digest()
	big := `{"secret":"tuoyun","platform":1,"uid":"big","name":"` + string(bytes.Repeat([]byte("x"), e.cfg.MaxBodyBytes)) + `"}`
	// The server answers as soon as it has read the headers and closes the connection,
	// so the request is written on a raw connection while the answer is read.
	conn, err := e.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		fmt.Fprintf(conn, "POST /auth/user_register HTTP/1.1\r\nHost: imnode\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
	}()
	var res fasthttp.Response
	if err := res.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("read answer: %v", err)
	}
	var env resp
	if err := json.Unmarshal(res.Body(), &env); err != nil || res.StatusCode() != 413 || env.ErrCode != CodeArgs || !strings.Contains(env.ErrMsg, "limit") {
		t.Fatalf("got %d %s, want 413 with an envelope", res.StatusCode(), res.Body())
	}
	if e.digest() != before || e.b.proposals.Load() != 0 {
		t.Fatalf("a body over the limit changed the state")
	}
	// The handler's own check, for a Handler mounted on someone else's server.
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/auth/user_register")
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetBodyString(big)
	e.s.Handler()(&ctx)
	if ctx.Response.StatusCode() != 413 {
		t.Fatalf("Handler on a foreign server: got %d, want 413", ctx.Response.StatusCode())
	}
}

func TestHandleHook(t *testing.T) {
	b := mustFakeBackend(t)
	s := New(testConfig(), b, nil)
	var calls atomic.Int64
	s.Handle("GET", "/ws", func(ctx *fasthttp.RequestCtx) {
		calls.Add(1)
		ctx.SetBodyString("upgrade here")
	})
	e := startEnv(t, testConfig(), b, s)
	if r := e.do("GET", "/ws", "", nil); r.Status != 200 || string(r.Raw) != "upgrade here" || calls.Load() != 1 {
		t.Fatalf("GET /ws: got %d %s, want the attached handler", r.Status, r.Raw)
	}
	if r := e.do("POST", "/ws", "", nil); r.Status != 405 {
		t.Fatalf("POST /ws: got %d, want 405", r.Status)
	}
	defer func() {
		if recover() == nil {
			t.Fatalf("Handle after Serve: got no panic, want one")
		}
	}()
	s.Handle("GET", "/late", func(*fasthttp.RequestCtx) {})
}

func TestShutdownDrainsInFlight(t *testing.T) {
	b := mustFakeBackend(t)
	release := make(chan struct{})
	entered := make(chan struct{})
	cfg := testConfig()
	s := New(cfg, b, nil)
	ln := fasthttputil.NewInmemoryListener()
	go s.Serve(ln)
	e := &env{t: t, cfg: cfg, b: b, s: s, client: &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}}
	e.admin = e.token(cfg.AppManagerUID[0])
	e.register("u1")
	b.proposeFn = func(ctx context.Context, cmd []byte) (*fsm.Result, error) {
		close(entered)
		<-release
		return b.apply(cmd)
	}
	got := make(chan *resp, 1)
	go func() { got <- e.send(e.admin, "u1", "u1", 1, "drain") }()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned %v before the in-flight request was answered", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-got; r.ErrCode != 0 {
		t.Fatalf("in-flight send: got %d %s, want 0", r.ErrCode, r.ErrMsg)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// captureHandler is a slog.Handler that keeps every record as strings, for tests of what
// is logged.
type captureHandler struct {
	mu   sync.Mutex
	recs []map[string]string
}

func newCaptureLogger(h *captureHandler) *slog.Logger { return slog.New(h) }

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *captureHandler) WithGroup(string) slog.Handler            { return h }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, m)
	h.mu.Unlock()
	return nil
}

func (h *captureHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.recs)
}

// find returns the last record with message msg and attribute key equal to val.
func (h *captureHandler) find(msg, key, val string) map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.recs) - 1; i >= 0; i-- {
		if r := h.recs[i]; r["msg"] == msg && r[key] == val {
			return r
		}
	}
	return nil
}
