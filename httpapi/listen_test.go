//go:build linux

package httpapi

import (
	"net"
	"syscall"
	"testing"
)

// TestListenSkipsKeepAlive: a connection the API's listener accepts has no TCP keep-alive
// probes (Go's default would set them up, four system calls per connection).
func TestListenSkipsKeepAlive(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, err := s.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var keepAlive int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		keepAlive, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil || serr != nil {
		t.Fatalf("getsockopt: %v %v", err, serr)
	}
	if keepAlive != 0 {
		t.Fatalf("SO_KEEPALIVE = %d on an accepted connection, want 0", keepAlive)
	}
}
