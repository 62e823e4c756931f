package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// authStream is raft's stream layer over TCP, with every connection authenticated in both
// directions (see peerauth.go) before raft sees it, and outgoing connections leaving from
// the IP the node listens on. On a machine that runs several nodes on 127.0.0.x addresses,
// the latter makes every link between two nodes a distinct (source, destination) pair,
// which is what a fault-injection suite needs to cut one link and not the others.
//
// Accept never waits on a peer: a goroutine per incoming connection runs the handshake
// (at most maxHandshakes at once, each bounded by handshakeTimeout) and only connections
// that pass it are handed to raft. One that fails is closed and logged with its address.
type authStream struct {
	ln        net.Listener
	advertise net.Addr
	local     *net.TCPAddr // nil: let the kernel choose
	auth      *peerAuth
	log       *slog.Logger
	refused   atomic.Uint64

	ready     chan net.Conn
	sem       chan struct{}
	closed    chan struct{}
	closeOnce sync.Once

	logMu      sync.Mutex
	window     time.Time // start of the current 10 s log window
	inWindow   int       // refusals in it
	suppressed int       // of which not logged
}

// refusalLogs is how many refused connections are logged per 10 s.
const refusalLogs = 20

func newAuthStream(bind string, auth *peerAuth, logger *slog.Logger) (*authStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft listen %s: %w", bind, err)
	}
	s := &authStream{ln: ln, advertise: ln.Addr(), auth: auth, log: logger,
		ready: make(chan net.Conn), sem: make(chan struct{}, maxHandshakes), closed: make(chan struct{})}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		s.local = &net.TCPAddr{IP: a.IP}
	}
	go s.acceptLoop()
	return s, nil
}

func (s *authStream) acceptLoop() {
	backoff := 5 * time.Millisecond
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			time.Sleep(backoff)
			if backoff < time.Second {
				backoff *= 2
			}
			continue
		}
		backoff = 5 * time.Millisecond
		select {
		case s.sem <- struct{}{}:
			go s.handshake(c)
		default:
			s.refuse(c, errors.New("too many connections in handshake"))
		}
	}
}

func (s *authStream) handshake(c net.Conn) {
	defer func() { <-s.sem }()
	conn, purpose, err := s.auth.server(c)
	if err != nil {
		s.refuse(c, err)
		return
	}
	if purpose == purposeProve {
		_ = conn.Close()
		return
	}
	select {
	case s.ready <- conn:
	case <-s.closed:
		_ = conn.Close()
	}
}

// refuse closes c and logs why with its remote address: at most refusalLogs lines per
// 10 s, then one line saying how many more there were (a scanner must not flood the log);
// imnode_raft_connections_refused_total counts every one.
func (s *authStream) refuse(c net.Conn, why error) {
	_ = c.Close()
	s.refused.Add(1)
	now := time.Now()
	s.logMu.Lock()
	if now.Sub(s.window) > 10*time.Second {
		if s.suppressed > 0 {
			s.log.Warn("raft connections refused and not logged", "count", s.suppressed)
		}
		s.window, s.inWindow, s.suppressed = now, 0, 0
	}
	s.inWindow++
	quiet := s.inWindow > refusalLogs
	if quiet {
		s.suppressed++
	}
	s.logMu.Unlock()
	if !quiet {
		s.log.Warn("raft connection refused", "remote", c.RemoteAddr().String(), "err", why)
	}
}

// Accept implements net.Listener: the next authenticated connection.
func (s *authStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (s *authStream) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.ln.Close()
	})
	return err
}

// Addr implements net.Listener, answering the advertised address.
func (s *authStream) Addr() net.Addr { return s.advertise }

func (s *authStream) dial(address string, timeout time.Duration, purpose byte) (net.Conn, string, error) {
	d := net.Dialer{Timeout: timeout}
	if s.local != nil {
		d.LocalAddr = s.local
	}
	c, err := d.Dial("tcp", address)
	if err != nil {
		return nil, "", err
	}
	conn, id, err := s.auth.client(c, address, purpose)
	if err != nil {
		_ = c.Close()
		return nil, "", err
	}
	return conn, id, nil
}

// Dial implements raft.StreamLayer: a connection to address whose listener proved the
// cluster key (and, with TLS, its certificate).
func (s *authStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, _, err := s.dial(string(address), timeout, purposeRaft)
	var op *net.OpError
	if err != nil && !(errors.As(err, &op) && op.Op == "dial") {
		s.log.Warn("raft connection to peer failed authentication", "addr", string(address), "err", err)
	}
	return c, err
}

// prove checks that the node listening on raftAddr holds the cluster's credentials and is
// node id.
func (s *authStream) prove(raftAddr, id string, timeout time.Duration) error {
	c, got, err := s.dial(raftAddr, timeout, purposeProve)
	if err != nil {
		return err
	}
	_ = c.Close()
	if got != id {
		return fmt.Errorf("%w: %s proved the cluster key as node %q, not %q", ErrPeerAuth, raftAddr, got, id)
	}
	return nil
}

// LocalDialer returns a dial function for fasthttp that leaves from host's IP when host is
// a specific address (see authStream for why).
func LocalDialer(host string) func(addr string) (net.Conn, error) {
	var local *net.TCPAddr
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		local = &net.TCPAddr{IP: ip}
	}
	return func(addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 2 * time.Second}
		if local != nil {
			d.LocalAddr = local
		}
		return d.Dial("tcp", addr)
	}
}
