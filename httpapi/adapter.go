package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/imnode/imnode/fsm"
	"github.com/valyala/fasthttp"
)

// access says who may call a route.
type access uint8

const (
	// accessOpen: anyone (health checks).
	accessOpen access = iota
	// accessSecret: auth/*; the handler checks the shared secret in the body.
	accessSecret
	// accessAdmin: an app administrator's token.
	accessAdmin
	// accessUser: any valid token; the handler limits what a user token may see or do.
	accessUser
	// accessCluster: the X-Cluster-Key header (/internal/*).
	accessCluster
)

// handlerFunc handles one routed, authenticated request. It returns the response to put in
// the envelope (a struct whose fields sit beside errCode and errMsg), or nil when it wrote
// the response itself (raw routes).
type handlerFunc func(r *request) (any, error)

// route is one entry of the route table.
type route struct {
	// name is the path without its leading slash: the metrics label, the log field and
	// part of the idempotency key.
	name   string
	method string
	access access
	// raw routes answer success with something other than an envelope (a file, metrics
	// text). Their failures still get an envelope, but with a non-200 status so that a
	// scraper or `curl -o` does not take the error for the content.
	raw bool
	h   handlerFunc
}

// request is the state of one request while its handler runs. It lives no longer than the
// handler, like the RequestCtx it points to.
type request struct {
	ctx *fasthttp.RequestCtx
	rt  *route
	who Identity
	// opID is the request's operationID once decoded, for the idempotency key and logs.
	opID string
	// consistent is set once a read barrier passed, so a request waits for it only once.
	consistent bool
}

func (s *Server) serveHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	path := ctx.Path()
	rt := s.routes[string(path)]
	if rt == nil {
		if s.serveExtra(ctx) {
			return
		}
		switch p := string(path); {
		case strings.HasPrefix(p, "/internal/"):
			rt = s.internalRoute
		case strings.HasPrefix(p, "/debug/pprof/") && s.cfg.Pprof:
			rt = s.pprofRoute
		}
	}
	if rt == nil {
		e := &Error{Code: CodeArgs, Status: fasthttp.StatusNotFound, Msg: fmt.Sprintf("no route %s", path)}
		s.finish(ctx, "unknown", "", e, nil, start)
		return
	}
	if m := ctx.Method(); rt.method != "" && string(m) != rt.method &&
		!(rt.method == fasthttp.MethodGet && string(m) == fasthttp.MethodHead) {
		ctx.Response.Header.Set("Allow", rt.method)
		e := &Error{Code: CodeArgs, Status: fasthttp.StatusMethodNotAllowed,
			Msg: fmt.Sprintf("%s takes %s, not %s", rt.name, rt.method, m)}
		s.finish(ctx, rt.name, "", e, nil, start)
		return
	}
	if limit := s.bodyLimit(rt); len(ctx.Request.Body()) > limit {
		// Only reachable when Handler runs under someone else's fasthttp.Server.
		e := &Error{Code: CodeArgs, Status: fasthttp.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
		s.finish(ctx, rt.name, "", e, nil, start)
		return
	}
	r := &request{ctx: ctx, rt: rt}
	resp, err := s.run(r)
	if err != nil {
		e, internal := toError(err)
		if rt.raw && e.Status == 0 {
			e = rawStatus(e)
		}
		var detail error
		if internal {
			detail = err
		}
		s.finish(ctx, rt.name, r.opID, e, detail, start)
		return
	}
	if resp != nil {
		writeOK(ctx, resp)
	}
	s.observe(rt.name, "0", nil, start)
}

func (s *Server) bodyLimit(rt *route) int {
	if rt == s.internalRoute {
		return s.internalBodyLimit()
	}
	return s.cfg.MaxBodyBytes
}

// run authenticates and calls the handler, turning a panic into a 500 so one bad request
// cannot stop the node.
func (s *Server) run(r *request) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in %s: %v\n%s", r.rt.name, p, debug.Stack())
		}
	}()
	switch r.rt.access {
	case accessAdmin, accessUser:
		tok := r.ctx.Request.Header.Peek("token")
		who, err := s.verify(r, string(tok))
		if err != nil {
			return nil, err
		}
		if r.rt.access == accessAdmin && !who.Admin {
			return nil, errNoPermission("%s needs an app administrator's token; uid %q is not in appManagerUid", r.rt.name, who.UID)
		}
		r.who = who
	case accessCluster:
		if !s.clusterKeyOK(r.ctx.Request.Header.Peek("X-Cluster-Key")) {
			return nil, &Error{Code: CodeNoPermission, Status: fasthttp.StatusForbidden, Msg: "missing or wrong X-Cluster-Key"}
		}
		if s.tls != nil && !peerCertified(r.ctx) {
			return nil, &Error{Code: CodeNoPermission, Status: fasthttp.StatusForbidden,
				Msg: "node-to-node calls need a client certificate signed by the cluster's CA"}
		}
	}
	return r.rt.h(r)
}

// rawStatus gives a failure of a raw route an HTTP status that says it failed.
func rawStatus(e *Error) *Error {
	c := *e
	switch {
	case e.Code >= CodeTokenExpired && e.Code <= CodeTokenNotExist:
		c.Status = fasthttp.StatusUnauthorized
	case e.Code == CodeNoPermission:
		c.Status = fasthttp.StatusForbidden
	case e.Code == CodeArgs:
		c.Status = fasthttp.StatusBadRequest
	default:
		c.Status = fasthttp.StatusInternalServerError
	}
	return &c
}

// finish answers a failed request: envelope, metrics and one log line.
func (s *Server) finish(ctx *fasthttp.RequestCtx, route, opID string, e *Error, detail error, start time.Time) {
	// A failure before decoding (bad token, wrong method) still logs the operationID the
	// client sent, so its support request can be found.
	if body := ctx.Request.Body(); opID == "" && len(body) > 0 && len(body) <= s.cfg.MaxBodyBytes && body[0] == '{' {
		var v struct {
			OperationID string `json:"operationID"`
		}
		if json.Unmarshal(ctx.Request.Body(), &v) == nil {
			opID = v.OperationID
		}
	}
	s.logFailure(ctx, route, opID, e, detail)
	writeError(ctx, e)
	s.observe(route, "", e, start)
}

func (s *Server) observe(route, code string, e *Error, start time.Time) {
	if e != nil {
		code = strconv.Itoa(e.Code)
	}
	s.requests.WithLabelValues(route, code).Inc()
	if !start.IsZero() {
		s.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
}

func (s *Server) logFailure(ctx *fasthttp.RequestCtx, route, opID string, e *Error, detail error) {
	level := slog.LevelInfo
	switch {
	case route == "readyz":
		// Load balancers poll it; a node that is not ready says so in its own logs.
		level = slog.LevelDebug
	case e.Code == CodeInternal:
		level = slog.LevelError
	case e.Code == CodeClusterUnavailable || e.Code == CodeOutcomeUnknown || e.Status == fasthttp.StatusForbidden:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("route", route),
		slog.String("operationID", opID),
		slog.Int("errCode", e.Code),
		slog.Int("status", e.httpStatus()),
		slog.String("errMsg", e.Msg),
		slog.String("remote", ctx.RemoteAddr().String()),
	}
	if detail != nil {
		attrs = append(attrs, slog.String("detail", detail.Error()))
	}
	s.log.LogAttrs(context.Background(), level, "request failed", attrs...)
}

// writeOK writes the success envelope around v: v's JSON object fields follow errCode and
// errMsg, so one encoding serves every route's shape.
func writeOK(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only response structs of this package get here; they always encode.
		panic(fmt.Sprintf("httpapi: encode response: %v", err))
	}
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetStatusCode(fasthttp.StatusOK)
	out := make([]byte, 0, len(b)+len(`{"errCode":0,"errMsg":"",`))
	out = append(out, `{"errCode":0,"errMsg":""`...)
	if len(b) > 2 {
		out = append(out, ',')
		out = append(out, b[1:]...)
	} else {
		out = append(out, '}')
	}
	ctx.Response.SetBodyRaw(out)
}

func writeError(ctx *fasthttp.RequestCtx, e *Error) {
	msg, _ := json.Marshal(e.Msg)
	out := make([]byte, 0, len(msg)+40)
	out = append(out, `{"errCode":`...)
	out = strconv.AppendInt(out, int64(e.Code), 10)
	out = append(out, `,"errMsg":`...)
	out = append(out, msg...)
	out = append(out, '}')
	ctx.Response.ResetBody()
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetStatusCode(e.httpStatus())
	ctx.Response.SetBodyRaw(out)
}

// empty is the response of routes that answer only errCode and errMsg.
type empty struct{}

// dataResp puts a route's answer under "data".
type dataResp struct {
	Data any `json:"data"`
}

// decode unmarshals the JSON body into v and says in words what was wrong with it.
func (r *request) decode(v any) error {
	body := r.ctx.Request.Body()
	if len(body) == 0 {
		return errArgs("the request body must be a JSON object")
	}
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return errArgs("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ) && typ.Field == "":
		return errArgs("the request body must be a JSON object, not a JSON %s", typ.Value)
	case errors.As(err, &typ) && strings.HasPrefix(typ.Value, "number") && jsonKind(typ.Type.Kind().String()) == "integer":
		return errArgs("field %s must be an integer in range, not %s", typ.Field, typ.Value)
	case errors.As(err, &typ):
		return errArgs("field %s must be a JSON %s, not a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	return errArgs("malformed JSON: %v", err)
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "integer"
	case strings.HasPrefix(k, "float"):
		return "number"
	case k == "slice", k == "array":
		return "array"
	case k == "struct", k == "map":
		return "object"
	case k == "ptr":
		return "value of the documented type"
	}
	return k
}

// idemKey is the idempotency key of the request: the same route, operationID and body
// mean the same operation. nil without an operationID. With a user's token the uid is
// part of the key: the acting user is not always in the body (group management acts as
// the token's user), so two users who pick the same operationID and body are two
// operations, and neither gets the other's answer.
// An administrator may act for anyone, so an administrator's key has no uid.
func (r *request) idemKey() []byte {
	if r.opID == "" {
		return nil
	}
	h := sha256.New()
	h.Write([]byte(r.rt.name))
	h.Write([]byte{'\n'})
	h.Write([]byte(r.opID))
	h.Write([]byte{'\n'})
	h.Write(r.ctx.Request.Body())
	if !r.who.Admin && r.who.UID != "" {
		h.Write([]byte("\nuid\n"))
		h.Write([]byte(r.who.UID))
	}
	return h.Sum(nil)
}

// stale reports whether the client asked for a local read without the barrier.
func (r *request) stale() bool {
	return strings.EqualFold(string(r.ctx.Request.Header.Peek("X-Consistency")), "stale")
}

// propose writes a command through the backend and returns its result, or the domain
// error the result carries. A repeated idempotent request is answered from the record of
// its first outcome without proposing.
func (s *Server) propose(r *request, t fsm.CommandType, body any) (*fsm.Result, error) {
	key := r.idemKey()
	if key != nil {
		res, ok, err := s.b.FSM().IdempotentResult(key)
		if err != nil {
			return nil, fmt.Errorf("idempotency lookup: %w", err)
		}
		if ok {
			return res, res.Error()
		}
	}
	cmd, err := fsm.Encode(t, key, body)
	if err != nil {
		return nil, err
	}
	res, err := s.b.Propose(context.Background(), cmd) // bounded by the apply timeout
	if err != nil {
		return nil, afterPropose(err)
	}
	if res == nil {
		return nil, fmt.Errorf("propose %s: no result", t)
	}
	return res, res.Error()
}

// barrier makes the following FSM reads linearizable, unless the client asked for a
// stale read or the request already passed one.
func (s *Server) barrier(r *request) error {
	if r.consistent || r.stale() {
		return nil
	}
	if err := s.consistentRead(); err != nil {
		return err
	}
	r.consistent = true
	return nil
}

func (s *Server) consistentRead() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadTimeout.D())
	defer cancel()
	if err := s.b.ConsistentRead(ctx); err != nil {
		return afterRead(err)
	}
	return nil
}

// serveExtra runs a handler attached with Handle, if one matches the path.
func (s *Server) serveExtra(ctx *fasthttp.RequestCtx) bool {
	byMethod := s.extra[string(ctx.Path())]
	if byMethod == nil {
		return false
	}
	start := time.Now()
	route := strings.TrimPrefix(string(ctx.Path()), "/")
	h := byMethod[string(ctx.Method())]
	if h == nil {
		allow := make([]string, 0, len(byMethod))
		for m := range byMethod {
			allow = append(allow, m)
		}
		ctx.Response.Header.Set("Allow", strings.Join(allow, ", "))
		e := &Error{Code: CodeArgs, Status: fasthttp.StatusMethodNotAllowed,
			Msg: fmt.Sprintf("%s does not take %s", route, ctx.Method())}
		s.finish(ctx, route, "", e, nil, start)
		return true
	}
	h(ctx)
	s.observe(route, "0", nil, start)
	return true
}
