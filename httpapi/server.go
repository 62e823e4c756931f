package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/internal/pki"
	"github.com/imnode/imnode/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/valyala/fasthttp"
)

// Backend is what the API needs from the node: writes through raft, linearizable reads of
// the local FSM, and the cluster operations. Package node implements it; tests fake it.
type Backend interface {
	// Propose replicates cmd (built by fsm.Encode) and returns its result once it is
	// committed and applied on this node. It gives up at the apply timeout, or at ctx's
	// deadline if that comes first. Errors are node.ErrNotApplied, node.ErrOutcomeUnknown
	// or I/O failures; business outcomes are in the Result.
	Propose(ctx context.Context, cmd []byte) (*fsm.Result, error)
	// ConsistentRead returns nil once FSM() reflects every write acknowledged before the
	// call (a linearizable read barrier).
	ConsistentRead(ctx context.Context) error
	// FSM is the local state machine, read directly by the read routes.
	FSM() *fsm.FSM
	// Status describes this node and the cluster for /cluster/status.
	Status() node.Status
	// RemoveServer removes nodeID from the raft configuration; node.ErrUnknownServer when
	// it is not in it.
	RemoveServer(ctx context.Context, nodeID string) error
	// Backup writes a consistent snapshot of the whole state to w.
	Backup(w io.Writer) error
	// HandleInternal answers a node-to-node call. path is the full request path
	// ("/internal/..."); it is called only after the cluster key was checked, and body is
	// the caller's own copy.
	HandleInternal(path string, body []byte) (status int, resp []byte)
	// Ready reports whether the node belongs to a cluster with a known leader and has
	// caught up.
	Ready() bool
	// OnlineStatus returns the WebSocket connections of uids on every node that answers
	// within a short timeout, and the nodes that did not (see node.Node.OnlineStatus).
	OnlineStatus(ctx context.Context, uids []string) (node.Presence, error)
}

// Server is the HTTP API of one node.
type Server struct {
	tokens tokenCache
	tls    *pki.Store // nil: plain HTTP
	cfg    config.Config
	b      Backend
	log    *slog.Logger
	admins map[string]bool
	// secretSum and clusterKeySum are SHA-256 sums so that the constant-time comparison
	// does not reveal the configured values' lengths either.
	secretSum     [sha256.Size]byte
	clusterKeySum [sha256.Size]byte
	jwtKey        []byte
	jwtParser     *jwt.Parser

	routes map[string]*route
	// internalRoute and pprofRoute serve the path prefixes /internal/ and /debug/pprof/.
	internalRoute *route
	pprofRoute    *route
	// extra holds handlers attached with Handle (path → method → handler).
	extra   map[string]map[string]fasthttp.RequestHandler
	serving atomic.Bool

	srv *fasthttp.Server

	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	metricsHandler fasthttp.RequestHandler
}

// Connection timeouts. Reads and writes of one request are small; backups and profiles
// raise the write deadline for themselves.
const (
	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	idleTimeout  = 2 * time.Minute
)

// New builds the API of a node. It serves nothing until Serve is called.
func New(cfg config.Config, b Backend, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		cfg:           cfg,
		b:             b,
		log:           logger,
		admins:        make(map[string]bool, len(cfg.AppManagerUID)),
		secretSum:     sha256.Sum256([]byte(cfg.Secret)),
		clusterKeySum: sha256.Sum256([]byte(cfg.ClusterKey)),
		jwtKey:        []byte(cfg.TokenPolicy.AccessSecret),
		jwtParser: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired()),
		extra: map[string]map[string]fasthttp.RequestHandler{},
		reg:   prometheus.NewRegistry(),
	}
	for _, uid := range cfg.AppManagerUID {
		s.admins[uid] = true
	}
	s.initMetrics()
	s.routes = s.buildRoutes()
	s.srv = &fasthttp.Server{
		Handler:                      s.Handler(),
		ErrorHandler:                 s.transportError,
		Name:                         "imnode",
		MaxRequestBodySize:           cfg.MaxBodyBytes,
		ReadTimeout:                  readTimeout,
		WriteTimeout:                 writeTimeout,
		IdleTimeout:                  idleTimeout,
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
		Logger:                       fasthttpLogger{logger},
		HeaderReceived:               s.requestConfig,
	}
	return s
}

// Registry is the Prometheus registry /metrics serves. Other packages register their
// collectors in it.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handle attaches an extra handler at method and path, for example the WebSocket gateway
// at GET /ws. The handler gets the raw request: it does its own authentication (see
// VerifyToken) and writes its own response. Handle must be called before Serve; it panics
// afterwards, because the route table is read without locks.
func (s *Server) Handle(method, path string, h fasthttp.RequestHandler) {
	if s.serving.Load() {
		panic("httpapi: Handle called after Serve")
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if s.extra[path] == nil {
		s.extra[path] = map[string]fasthttp.RequestHandler{}
	}
	s.extra[path][method] = h
}

// Handler returns the request handler of every route, for callers that run their own
// fasthttp.Server (Serve uses it too). The body size limit is then theirs to set; the
// handler checks it again.
func (s *Server) Handler() fasthttp.RequestHandler { return s.serveHTTP }

// SetTLS makes Serve serve HTTPS with store's current certificate (reloaded without a
// restart, see pki.Store) and requires, on /internal/*, a client certificate that the
// cluster's CA signed besides the cluster key. Call it before Serve.
func (s *Server) SetTLS(store *pki.Store) { s.tls = store }

// Serve accepts connections on ln until Shutdown; with cfg.TLS set it serves HTTPS.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLS.Enabled() && s.tls == nil {
		st, err := pki.Load(pki.Files{CertFile: s.cfg.TLS.CertFile, KeyFile: s.cfg.TLS.KeyFile,
			CAFile: s.cfg.TLS.CAFile, ServerName: s.cfg.TLS.ServerName}, s.log)
		if err != nil {
			return err
		}
		s.tls = st
	}
	s.serving.Store(true)
	ln = &patientListener{Listener: ln, log: s.log}
	if s.tls != nil {
		// App clients present no certificate; other nodes present theirs, which is
		// verified against the cluster's CA (internalPeerOK).
		ln = tls.NewListener(ln, s.tls.ServerConfig(false))
	}
	return s.srv.Serve(ln)
}

// Shutdown stops accepting connections and waits until in-flight requests have been
// answered or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.ShutdownWithContext(ctx)
}

// internalBodySlack is how much larger than the client limit a node-to-node body may be:
// a forwarded command carries a client's body plus the generated IDs and its encoding.
const internalBodySlack = 64 << 10

// internalBodyLimit is the body limit of /internal/*.
func (s *Server) internalBodyLimit() int { return 2*s.cfg.MaxBodyBytes + internalBodySlack }

// requestConfig lets node-to-node calls carry a command built from a client body that was
// just under the client limit.
func (s *Server) requestConfig(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if strings.HasPrefix(string(h.RequestURI()), "/internal/") {
		return fasthttp.RequestConfig{MaxRequestBodySize: s.internalBodyLimit()}
	}
	return fasthttp.RequestConfig{}
}

// transportError answers requests fasthttp could not read: a body over the limit gets
// 413, the others 4xx, all with an envelope.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	e := &Error{Code: CodeArgs, Status: fasthttp.StatusBadRequest, Msg: "cannot parse the HTTP request: " + err.Error()}
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e.Status = fasthttp.StatusRequestEntityTooLarge
		e.Msg = fmt.Sprintf("request body is larger than the limit of %d bytes", s.cfg.MaxBodyBytes)
	case errors.As(err, &small):
		e.Status = fasthttp.StatusRequestHeaderFieldsTooLarge
		e.Msg = "request headers are too large"
	case errors.As(err, &netErr) && netErr.Timeout():
		e.Status = fasthttp.StatusRequestTimeout
		e.Msg = "timed out reading the request"
	}
	route := s.routeLabel(ctx)
	s.observe(route, "", e, time.Time{})
	s.logFailure(ctx, route, "", e, err)
	writeError(ctx, e)
}

// routeLabel names the route of a request fasthttp could not read, without letting
// arbitrary paths into metric labels.
func (s *Server) routeLabel(ctx *fasthttp.RequestCtx) string {
	p := string(ctx.Path())
	if rt := s.routes[p]; rt != nil {
		return rt.name
	}
	switch {
	case strings.HasPrefix(p, "/internal/"):
		return "internal"
	case strings.HasPrefix(p, "/debug/pprof/"):
		return "debug/pprof"
	}
	return "unknown"
}

// fasthttpLogger sends fasthttp's own messages (accept errors and the like) to slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Warn("fasthttp: " + fmt.Sprintf(format, args...))
}

func (s *Server) initMetrics() {
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imnode_http_requests_total",
		Help: "HTTP API requests by route and envelope errCode.",
	}, []string{"route", "errcode"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "imnode_http_request_duration_seconds",
		Help:    "Time from routing a request to writing its answer, by route.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"})
	s.reg.MustRegister(s.requests, s.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metricsHandler = newMetricsHandler(s.reg)
}
