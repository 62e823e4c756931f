package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// patientListener retries Accept when the process is out of file descriptors (or a client
// aborted mid-handshake), as net/http does, instead of letting fasthttp treat it as
// permanent and stop serving: a flood of connections must not take a node down.
type patientListener struct {
	net.Listener
	log    *slog.Logger
	logged time.Time
}

func (l *patientListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil || !retryableAccept(err) {
			return c, err
		}
		if time.Since(l.logged) > 10*time.Second {
			l.log.Warn("accept failed, retrying (too many open files?)", "err", err)
			l.logged = time.Now()
		}
		time.Sleep(backoff)
		if backoff < time.Second {
			backoff *= 2
		}
	}
}

func retryableAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// Listen opens the API's TCP listener on addr. Accepted connections get no TCP keep-alive
// probes: the server's own timeouts close an idle or stalled HTTP connection (idleTimeout,
// readTimeout) and the gateway pings its WebSocket clients (PongWait), so the probes would
// find nothing those do not, and setting them up costs four setsockopt calls per accepted
// connection, paid on every request by a client that opens a connection per request.
func Listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", addr)
}
