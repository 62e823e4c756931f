package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/gateway"
	"github.com/imnode/imnode/httpapi"
	"github.com/imnode/imnode/node"
	"github.com/valyala/fasthttp"
)

// fdReserve is the descriptors a node keeps for everything but WebSocket clients: raft
// and gossip peers, its files, HTTP API clients.
const fdReserve = 1024

// newGateway builds the WebSocket gateway. It exists before the FSM so that the FSM's
// apply callbacks (OnCommit, OnUsersDeleted) can be wired to it. It raises the open-file
// limit for maxConnections and, where the system does not allow that many, lowers the
// connection limit to what fits: a node out of descriptors cannot accept any request.
func newGateway(cfg config.Config, logger *slog.Logger) *gateway.Gateway {
	maxConns := cfg.MaxConnections
	lim, err := gateway.RaiseFileLimit(uint64(maxConns) + fdReserve)
	if err != nil || lim < uint64(maxConns)+fdReserve {
		maxConns = max(0, int(lim)-fdReserve)
		logger.Warn("open-file limit too low for maxConnections: WebSocket connections capped",
			"limit", lim, "maxConnections", cfg.MaxConnections, "cap", maxConns, "err", err)
		if maxConns == 0 {
			maxConns = -1 // refuse all rather than take the default
		}
	}
	return gateway.New(gateway.Options{Logger: logger, MaxConnections: maxConns,
		MaxFrameBytes: cfg.MaxFrameBytes, SendBufferFrames: cfg.SendBufferFrames})
}

// startGateway connects the gateway to the node and the API and attaches GET /ws and
// GET /demo; it must run before the API serves.
func startGateway(cfg config.Config, gw *gateway.Gateway, f *fsm.FSM, n *node.Node, api *httpapi.Server, logger *slog.Logger) {
	gw.Start(gateway.Deps{
		Store: f,
		Verify: func(token string) (gateway.Identity, error) {
			id, err := api.VerifyToken(token)
			var e *httpapi.Error
			if errors.As(err, &e) {
				return gateway.Identity{}, &gateway.AuthError{Code: e.Code, Msg: e.Msg}
			}
			return gateway.Identity{UID: id.UID, Admin: id.Admin, Platform: id.Platform}, err
		},
		API:   api.Handler(),
		Ready: n.Ready,
	})
	n.SetPresence(func(uids []string) []node.Conn {
		local := gw.Online(uids)
		out := make([]node.Conn, len(local))
		for i, c := range local {
			out[i] = node.Conn{UID: c.UID, Platform: c.Platform, ConnID: c.ConnID, Since: c.Since.UnixNano()}
		}
		return out
	})
	api.Handle(fasthttp.MethodGet, "/ws", gw.ServeWS)
	api.Handle(fasthttp.MethodGet, "/demo", gw.ServeDemo)
	gw.Register(api.Registry())
}

// stopGateway closes every client connection with a close code and a reason, so clients
// reconnect to another node and resume there.
func stopGateway(gw *gateway.Gateway, leaving bool, logger *slog.Logger) {
	reason := "node shutting down: reconnect to another node"
	if leaving {
		reason = "node leaving the cluster: reconnect to another node"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := gw.Close(ctx, gateway.CloseGoingAway, reason); err != nil {
		logger.Warn("closing client connections", "err", err)
	}
}
