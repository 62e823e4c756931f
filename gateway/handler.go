package gateway

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// ServeWS is the GET /ws handler: it authenticates the token (query parameter token, or
// header token), upgrades the connection and serves it until it closes. Failures before
// the upgrade answer an HTTP status with the API's envelope.
func (g *Gateway) ServeWS(ctx *fasthttp.RequestCtx) {
	switch {
	case g.closing.Load():
		g.refuse(ctx, "closing", fasthttp.StatusServiceUnavailable, 1801, "node shutting down: connect to another node")
		return
	case g.deps.Ready != nil && !g.deps.Ready():
		g.refuse(ctx, "not_ready", fasthttp.StatusServiceUnavailable, 1801, "node is not ready (no leader known, or not caught up with it): connect to another node")
		return
	}
	token := string(ctx.QueryArgs().Peek("token"))
	if token == "" {
		token = string(ctx.Request.Header.Peek("token"))
	}
	id, err := g.deps.Verify(token)
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			status := fasthttp.StatusUnauthorized
			if ae.Code == 1801 {
				status = fasthttp.StatusServiceUnavailable
			}
			g.refuse(ctx, "token", status, ae.Code, ae.Msg)
			return
		}
		g.log.Error("verify token", "err", err)
		g.refuse(ctx, "error", fasthttp.StatusInternalServerError, 500, "cannot verify the token")
		return
	}
	uid := id.UID
	if q := string(ctx.QueryArgs().Peek("uid")); q != "" && q != uid {
		if !id.Admin {
			g.refuse(ctx, "permission", fasthttp.StatusForbidden, 1002,
				fmt.Sprintf("a user token connects only as its own uid %q; uid= is for administrators' tokens", uid))
			return
		}
		if len(q) > 64 {
			g.refuse(ctx, "args", fasthttp.StatusBadRequest, 1001, "uid is longer than 64 characters")
			return
		}
		uid = q
	}
	if g.reserved.Add(1) > int64(g.opts.MaxConnections) {
		g.reserved.Add(-1)
		g.refuse(ctx, "limit", fasthttp.StatusServiceUnavailable, 1801,
			fmt.Sprintf("this node holds its limit of %d connections: connect to another node", g.opts.MaxConnections))
		return
	}
	// Nothing of ctx may be kept past this handler: copy what the connection needs.
	remote := copyAddr(ctx.RemoteAddr())
	// The 101 is written by serveConn, not by fasthttp after this handler returns: the
	// client must not see itself connected before the connection is registered and has
	// its baseline, or a message applied in between would be neither pushed nor counted
	// as before the connection (doc.go, "Delivery"). handshake is set below, before the
	// hijack handler can run.
	var handshake []byte
	g.conns.Add(1)
	err = g.up.Upgrade(ctx, func(ws *websocket.Conn) {
		defer g.conns.Done()
		defer g.reserved.Add(-1)
		g.serveConn(newConn(g, ws, id, uid, token, remote), handshake)
	})
	if err != nil {
		// The upgrader already answered (bad handshake); the hijack never runs.
		g.conns.Done()
		g.reserved.Add(-1)
		g.m.refused.WithLabelValues("handshake").Inc()
		return
	}
	handshake = append([]byte(nil), ctx.Response.Header.Header()...)
	ctx.HijackSetNoResponse(true)
}

func (g *Gateway) refuse(ctx *fasthttp.RequestCtx, label string, status, code int, msg string) {
	g.m.refused.WithLabelValues(label).Inc()
	b, _ := json.Marshal(struct {
		ErrCode int    `json:"errCode"`
		ErrMsg  string `json:"errMsg"`
	}{code, msg})
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(b)
}

func copyAddr(a net.Addr) net.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		cp := *t
		cp.IP = append(net.IP(nil), t.IP...)
		return &cp
	}
	return a
}

// serveConn runs one connection: register first, then read the starting point, so a
// message applied in between is both in the starting point and pushed, and the seq
// positions drop the copy (never a gap, never a duplicate). Only then does it write the
// handshake's 101 response, so everything applied after the client sees itself connected
// is pushed.
func (g *Gateway) serveConn(c *conn, handshake []byte) {
	g.register(c)
	defer g.unregister(c)
	if g.closing.Load() {
		// Close ran between the handshake check and the registration.
		c.closeWith(CloseGoingAway, "node shutting down: reconnect to another node")
	}
	base, err := g.deps.Store.NewestSeqs(c.uid)
	if err != nil {
		g.log.Error("read newest seqs", "uid", c.uid, "err", err)
		c.closeWith(CloseInternal, "cannot read your conversations: reconnect")
	}
	c.baseline = base
	if _, err := c.ws.NetConn().Write(handshake); err != nil {
		return // the client is gone; the server closes the socket
	}
	go c.writeLoop()
	c.readLoop()
	<-c.writerDone
}

//go:embed demo/index.html
var demoFS embed.FS

// ServeDemo is the GET /demo handler: a single page (plain HTML and JavaScript) that logs
// in as a user, lists its conversations, and sends and receives over /ws with resume.
func (g *Gateway) ServeDemo(ctx *fasthttp.RequestCtx) {
	b, err := demoFS.ReadFile("demo/index.html")
	if err != nil {
		ctx.Error("demo page missing", fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(b)
}
