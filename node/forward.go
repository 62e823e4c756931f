package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// ClusterKeyHeader carries the shared cluster key on every internal call.
const ClusterKeyHeader = "X-Cluster-Key"

// httpForwarder calls other nodes' /internal/ routes over pooled keep-alive connections,
// leaving from this node's own IP (see boundStream).
type httpForwarder struct {
	n      *Node
	client *fasthttp.Client
	scheme string
}

func newHTTPForwarder(n *Node) *httpForwarder {
	f := &httpForwarder{n: n, scheme: "http://"}
	f.client = &fasthttp.Client{
		Dial:                          LocalDialer(hostOf(n.cfg.HTTPAddr)),
		MaxConnsPerHost:               512,
		MaxIdleConnDuration:           30 * time.Second,
		ReadTimeout:                   n.cfg.ApplyTimeout.D() + time.Second,
		WriteTimeout:                  5 * time.Second,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
	}
	if n.tls != nil {
		// The dialer does the TLS handshake itself, verifying the peer's certificate against
		// the cluster's CA (and presenting this node's as client certificate), so that a
		// failed verification is known to have happened before the request was written;
		// fasthttp takes a conn that has a Handshake method as TLS already.
		f.scheme = "https://"
		plain := f.client.Dial
		f.client.Dial = func(addr string) (net.Conn, error) {
			c, err := plain(addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, n.tls.ClientConfig(addr))
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err != nil {
				_ = c.Close()
				return nil, &tlsDialError{addr: addr, err: err}
			}
			_ = tc.SetDeadline(time.Time{})
			return tc, nil
		}
	}
	return f
}

// tlsDialError is a TLS handshake with another node that failed (its certificate is not
// the cluster CA's, or it refused ours): nothing was sent.
type tlsDialError struct {
	addr string
	err  error
}

func (e *tlsDialError) Error() string { return fmt.Sprintf("TLS with %s: %v", e.addr, e.err) }
func (e *tlsDialError) Unwrap() error { return e.err }

func (f *httpForwarder) httpAddrOf(id string) (string, bool) {
	for _, m := range f.n.memberList() {
		if m.NodeID == id && m.HTTPAddr != "" {
			return m.HTTPAddr, true
		}
	}
	return "", false
}

func (f *httpForwarder) forward(ctx context.Context, leaderID, path string, body []byte) ([]byte, error) {
	addr, ok := f.httpAddrOf(leaderID)
	if !ok {
		return nil, fmt.Errorf("leader %s: HTTP address not known yet: %w", leaderID, ErrNotSent)
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(f.scheme + addr + path)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.Set(ClusterKeyHeader, f.n.cfg.ClusterKey)
	req.SetBodyRaw(body)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(f.n.cfg.ApplyTimeout.D())
	}
	if err := f.client.DoDeadline(req, resp, deadline); err != nil {
		if isDialError(err) {
			return nil, fmt.Errorf("forward to %s: %w: %w", addr, err, ErrNotSent)
		}
		return nil, fmt.Errorf("forward to %s: %w", addr, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		// 403 (wrong key) and 404 are answered before anything is applied.
		return nil, fmt.Errorf("forward to %s: HTTP %d %s: %w", addr, resp.StatusCode(), resp.Body(), ErrNotSent)
	}
	return append([]byte(nil), resp.Body()...), nil
}

// isDialError reports errors that happen before a request is written.
func isDialError(err error) bool {
	if errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) {
		return true
	}
	var te *tlsDialError
	if errors.As(err, &te) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
