package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// longWriteTimeout bounds the write of a backup or a profile, which can take far longer
// than an API answer.
const longWriteTimeout = time.Hour

func (s *Server) healthz(r *request) (any, error) { return empty{}, nil }

func (s *Server) readyz(r *request) (any, error) {
	if !s.b.Ready() {
		return nil, &Error{Code: CodeClusterUnavailable, Status: fasthttp.StatusServiceUnavailable,
			Msg: "not ready: no known leader, or not caught up yet"}
	}
	return empty{}, nil
}

func newMetricsHandler(reg *prometheus.Registry) fasthttp.RequestHandler {
	return fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

func (s *Server) metrics(r *request) (any, error) {
	s.metricsHandler(r.ctx)
	return nil, nil
}

func (s *Server) clusterStatus(r *request) (any, error) {
	st := s.b.Status()
	st.Members = nonNil(st.Members)
	return dataResp{st}, nil
}

type removeNodeReq struct {
	OperationID string `json:"operationID"`
	NodeID      string `json:"nodeID"`
}

// removeNode removes a server from the raft configuration. Membership changes are not
// commands of the FSM, so operationID is for the logs only; a repeated removal answers
// 1004.
func (s *Server) removeNode(r *request) (any, error) {
	var req removeNodeReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(checkText("operationID", req.OperationID, maxOperationID), checkID("nodeID", req.NodeID, maxNodeID)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout.D())
	defer cancel()
	if err := s.b.RemoveServer(ctx, req.NodeID); err != nil {
		return nil, fmt.Errorf("remove node %q: %w", req.NodeID, afterPropose(err))
	}
	return empty{}, nil
}

// backup streams a snapshot of the whole state. It passes the read barrier first, so the
// file holds at least every write acknowledged before the request. A failure in the
// middle of the stream breaks the chunked encoding instead of ending it, so the client
// sees an error rather than a short file that looks whole.
func (s *Server) backup(r *request) (any, error) {
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		// Ends when the backup is written or fasthttp closes pr (client gone).
		err := s.b.Backup(pw)
		if err != nil {
			s.log.Error("backup failed", "err", err)
		}
		pw.CloseWithError(err)
	}()
	name := fmt.Sprintf("imnode-%s-%s.db", s.cfg.NodeID, time.Now().UTC().Format("20060102T150405Z"))
	r.ctx.SetContentType("application/octet-stream")
	r.ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	_ = r.ctx.SetWriteDeadline(time.Now().Add(longWriteTimeout))
	r.ctx.SetBodyStream(pr, -1)
	return nil, nil
}

type digestResp struct {
	AppliedIndex uint64 `json:"appliedIndex"`
	Digest       string `json:"digest"`
}

// digest answers a hash of the whole state with the index it reflects, to compare nodes.
// An apply between reading the index and hashing would pair them wrongly, so it retries
// until the index did not move.
func (s *Server) digest(r *request) (any, error) {
	if err := s.barrier(r); err != nil {
		return nil, err
	}
	f := s.b.FSM()
	var out digestResp
	for range 10 {
		idx := f.AppliedIndex()
		d, err := f.Digest()
		if err != nil {
			return nil, err
		}
		out = digestResp{AppliedIndex: idx, Digest: d}
		if f.AppliedIndex() == idx {
			break
		}
	}
	return dataResp{out}, nil
}

// internal passes a node-to-node call, whose cluster key run has checked, to the backend
// and writes its answer as is.
func (s *Server) internal(r *request) (any, error) {
	body := append([]byte(nil), r.ctx.Request.Body()...)
	status, resp := s.b.HandleInternal(string(r.ctx.Path()), body)
	r.ctx.SetStatusCode(status)
	r.ctx.SetContentType("application/octet-stream")
	r.ctx.SetBody(resp)
	return nil, nil
}

// pprofHandlers are net/http/pprof's handlers; Index serves the named profiles.
var pprofHandlers = map[string]fasthttp.RequestHandler{
	"cmdline": fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Cmdline),
	"profile": fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Profile),
	"symbol":  fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Symbol),
	"trace":   fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Trace),
}

var pprofIndex = fasthttpadaptor.NewFastHTTPHandler(http.HandlerFunc(pprof.Index))

func (s *Server) pprof(r *request) (any, error) {
	_ = r.ctx.SetWriteDeadline(time.Now().Add(longWriteTimeout))
	name := strings.TrimPrefix(string(r.ctx.Path()), "/debug/pprof/")
	if h, ok := pprofHandlers[name]; ok {
		h(r.ctx)
	} else {
		pprofIndex(r.ctx)
	}
	return nil, nil
}
