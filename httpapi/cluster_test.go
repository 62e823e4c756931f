package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/node"
	"github.com/valyala/fasthttp"
)

func TestInternalNeedsClusterKey(t *testing.T) {
	logs := &captureHandler{}
	e := newEnvWith(t, mustFakeBackend(t), nil, newCaptureLogger(logs))
	before := e.digest()
	for _, key := range []string{"", "wrong key"} {
		hdr := []string{}
		if key != "" {
			hdr = []string{"X-Cluster-Key", key}
		}
		r := e.do("POST", "/internal/propose", "", "payload", hdr...)
		if r.Status != 403 {
			t.Fatalf("key %q: got HTTP %d %s, want 403", key, r.Status, r.Raw)
		}
	}
	if e.b.internals.Load() != 0 || e.digest() != before {
		t.Fatalf("a call without the key reached the backend")
	}
	warn := logs.find("request failed", "route", "internal")
	if warn == nil || warn["level"] != "WARN" || warn["remote"] == "" {
		t.Fatalf("403 log: got %v, want a warning with the remote address", warn)
	}

	r := e.do("PUT", "/internal/anything", "", "payload", "X-Cluster-Key", e.cfg.ClusterKey)
	if r.Status != 200 || string(r.Raw) != "/internal/anything:payload" {
		t.Fatalf("with the key: got %d %q, want the backend's answer", r.Status, r.Raw)
	}
	e.b.internalFn = func(string, []byte) (int, []byte) { return 404, []byte("nope") }
	if r := e.do("POST", "/internal/x", "", nil, "X-Cluster-Key", e.cfg.ClusterKey); r.Status != 404 || string(r.Raw) != "nope" {
		t.Fatalf("backend status: got %d %q, want 404 nope", r.Status, r.Raw)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.post("manager/get_all_users_uid", "", map[string]any{"operationID": "m"})
	r := e.do("GET", "/metrics", "", nil)
	if r.Status != 200 || !strings.Contains(string(r.Raw), `imnode_http_requests_total{errcode="1507",route="manager/get_all_users_uid"} 1`) ||
		!strings.Contains(string(r.Raw), "imnode_http_request_duration_seconds_bucket") {
		t.Fatalf("metrics: got %d\n%s", r.Status, r.Raw)
	}

	locked := newEnv(t, func(c *config.Config) { c.MetricsRequireToken = true })
	if r := locked.do("GET", "/metrics", "", nil); r.Status != 401 || r.ErrCode != CodeTokenNotExist {
		t.Fatalf("metrics without token: got %d %s, want 401 1507", r.Status, r.Raw)
	}
	if r := locked.do("GET", "/metrics", locked.register("alice"), nil); r.Status != 403 {
		t.Fatalf("metrics with a user token: got %d %s, want 403", r.Status, r.Raw)
	}
	if r := locked.do("GET", "/metrics", locked.admin, nil); r.Status != 200 {
		t.Fatalf("metrics with the admin token: got %d, want 200", r.Status)
	}
}

func TestClusterRoutes(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Pprof = true })
	e.register("alice")

	r := e.do("GET", "/cluster/status", e.admin, nil)
	var st node.Status
	r.data(t, &st)
	if r.ErrCode != 0 || st.NodeID != "node1" || st.State != "leader" || st.Members == nil {
		t.Fatalf("status: got %s", r.Raw)
	}

	e.wantCode("cluster/remove_node", e.admin, map[string]any{"operationID": "r", "nodeID": "node9"}, CodeRecordNotFound)
	var removed string
	e.b.removeServerFn = func(_ context.Context, id string) error { removed = id; return nil }
	e.ok("cluster/remove_node", e.admin, map[string]any{"operationID": "r", "nodeID": "node2"})
	if removed != "node2" {
		t.Fatalf("removed %q, want node2", removed)
	}

	r = e.do("GET", "/cluster/digest", e.admin, nil)
	var d digestResp
	r.data(t, &d)
	if d.Digest != e.digest() || d.AppliedIndex != e.b.f.AppliedIndex() {
		t.Fatalf("digest: got %+v, want %s at %d", d, e.digest(), e.b.f.AppliedIndex())
	}

	r = e.do("GET", "/cluster/backup", e.admin, nil)
	if r.Status != 200 || string(r.Raw) != "backup-bytes" || r.Header["Content-Type"] != "application/octet-stream" ||
		!strings.HasPrefix(r.Header["Content-Disposition"], "attachment; filename=") {
		t.Fatalf("backup: got %d %q %v", r.Status, r.Raw, r.Header)
	}
	if r := e.do("GET", "/cluster/backup", "", nil); r.Status != 401 {
		t.Fatalf("backup without a token: got %d, want 401", r.Status)
	}

	// A backup that fails half-way must not look like a whole file.
	e.b.backupFn = func(w io.Writer) error {
		io.WriteString(w, strings.Repeat("x", 100<<10))
		return errors.New("disk on fire")
	}
	req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.SetRequestURI("http://imnode/cluster/backup")
	req.Header.Set("token", e.admin)
	if err := e.client.Do(req, res); err == nil {
		t.Fatalf("a failed backup was delivered as a complete answer")
	}

	if r := e.do("GET", "/debug/pprof/", e.admin, nil); r.Status != 200 || !strings.Contains(string(r.Raw), "goroutine") {
		t.Fatalf("pprof index: got %d", r.Status)
	}
	if r := e.do("GET", "/debug/pprof/goroutine", "", nil); r.Status != 401 {
		t.Fatalf("pprof without a token: got %d, want 401", r.Status)
	}
}

// TestClusterErrors maps node's errors: 1801 and 1802 with HTTP 503, a write deadline as
// 1802, a read deadline as 1801, anything unknown as 500 with the detail in the log only.
func TestClusterErrors(t *testing.T) {
	logs := &captureHandler{}
	b := mustFakeBackend(t)
	e := newEnvWith(t, b, nil, newCaptureLogger(logs))
	e.register("alice", "bob")
	before := e.digest()

	write := func(opID string) *resp {
		return e.send(e.admin, "alice", "bob", 1, opID)
	}
	cases := []struct {
		err    error
		code   int
		status int
	}{
		{node.ErrNotApplied, CodeClusterUnavailable, 503},
		{fmt.Errorf("forward: %w", node.ErrOutcomeUnknown), CodeOutcomeUnknown, 503},
		{context.DeadlineExceeded, CodeOutcomeUnknown, 503},
		{errors.New("secret detail: bbolt page 7 corrupt"), CodeInternal, 500},
	}
	for i, c := range cases {
		b.proposeFn = func(context.Context, []byte) (*fsm.Result, error) { return nil, c.err }
		r := write(fmt.Sprint("op", i))
		if r.ErrCode != c.code || r.Status != c.status {
			t.Fatalf("propose error %v: got %d HTTP %d, want %d HTTP %d", c.err, r.ErrCode, r.Status, c.code, c.status)
		}
		if strings.Contains(r.ErrMsg, "secret detail") {
			t.Fatalf("errMsg leaks the internal detail: %q", r.ErrMsg)
		}
	}
	if rec := logs.find("request failed", "errCode", "500"); rec == nil || !strings.Contains(rec["detail"], "secret detail") || rec["level"] != "ERROR" {
		t.Fatalf("500 log: got %v, want an error with the detail", rec)
	}
	b.proposeFn = nil

	b.consistentReadFn = func(context.Context) error { return node.ErrNotApplied }
	r := e.post("msg/newest_seq", e.admin, map[string]any{"uid": "alice"})
	if r.ErrCode != CodeClusterUnavailable || r.Status != 503 {
		t.Fatalf("read without a leader: got %d HTTP %d, want 1801 503", r.ErrCode, r.Status)
	}
	b.consistentReadFn = func(context.Context) error { return context.DeadlineExceeded }
	r = e.post("msg/newest_seq", e.admin, map[string]any{"uid": "alice"})
	if r.ErrCode != CodeClusterUnavailable {
		t.Fatalf("read barrier deadline: got %d, want 1801", r.ErrCode)
	}
	// A stale read skips the barrier.
	r = e.do("POST", "/msg/newest_seq", e.admin, map[string]any{"uid": "alice"}, "X-Consistency", "stale")
	if r.ErrCode != 0 {
		t.Fatalf("stale read: got %d %q, want 0", r.ErrCode, r.ErrMsg)
	}
	if e.digest() != before {
		t.Fatalf("failed writes changed the state")
	}
}

// TestFailureLoggedOnce: one failed request, one log line with route, operationID and
// errCode.
func TestFailureLoggedOnce(t *testing.T) {
	logs := &captureHandler{}
	e := newEnvWith(t, mustFakeBackend(t), nil, newCaptureLogger(logs))
	n := logs.count()
	e.post("manager/send_msg", e.admin, map[string]any{"operationID": "op-77", "sendID": "a", "recvID": "b", "sessionType": 9, "contentType": 101, "content": map[string]any{"text": "x"}})
	if got := logs.count() - n; got != 1 {
		t.Fatalf("got %d log lines, want 1", got)
	}
	rec := logs.find("request failed", "operationID", "op-77")
	if rec == nil || rec["route"] != "manager/send_msg" || rec["errCode"] != "1001" {
		t.Fatalf("log line: got %v", rec)
	}
	// Before decoding (no token) the operationID is still found.
	e.post("manager/send_msg", "", map[string]any{"operationID": "op-78"})
	if rec := logs.find("request failed", "operationID", "op-78"); rec == nil || rec["errCode"] != "1507" {
		t.Fatalf("log line of a missing token: got %v", rec)
	}
}

// TestPanicIs500: a bug in one request answers 500 and the server keeps serving.
func TestPanicIs500(t *testing.T) {
	b := mustFakeBackend(t)
	e := newEnvWith(t, b, nil, nil)
	e.register("alice")
	b.proposeFn = func(context.Context, []byte) (*fsm.Result, error) { panic("boom") }
	if r := e.send(e.admin, "alice", "alice", 1, "p"); r.ErrCode != CodeInternal || r.Status != 500 {
		t.Fatalf("panic: got %d HTTP %d, want 500", r.ErrCode, r.Status)
	}
	b.proposeFn = nil
	e.send(e.admin, "alice", "alice", 1, "p2")
	if r := e.send(e.admin, "alice", "alice", 1, "p3"); r.ErrCode != 0 {
		t.Fatalf("after a panic: got %d, want 0", r.ErrCode)
	}
}
