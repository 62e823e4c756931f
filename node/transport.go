package node

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// boundStream is raft's TCP stream layer with one difference: outgoing connections leave
// from the IP the node listens on. On a machine that runs several nodes on 127.0.0.x
// addresses, that makes every link between two nodes a distinct (source, destination)
// pair, which is what a fault-injection suite needs to cut one link and not the others.
type boundStream struct {
	net.Listener
	advertise net.Addr
	local     *net.TCPAddr // nil: let the kernel choose
}

func newBoundStream(bind string) (*boundStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft listen %s: %w", bind, err)
	}
	s := &boundStream{Listener: ln, advertise: ln.Addr()}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		s.local = &net.TCPAddr{IP: a.IP}
	}
	return s, nil
}

// Dial implements raft.StreamLayer.
func (s *boundStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if s.local != nil {
		d.LocalAddr = s.local
	}
	return d.Dial("tcp", string(address))
}

// Addr implements net.Listener, answering the advertised address.
func (s *boundStream) Addr() net.Addr { return s.advertise }

// LocalDialer returns a dial function for fasthttp that leaves from host's IP when host is
// a specific address (see boundStream for why).
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
