//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

// The binary serves its API from httpapi.Listen: a connection it accepts has no TCP
// keep-alive timer. Read from outside, in /proc/net/tcp, where the server's side of a kept
// idle connection shows timer 02 (keep-alive) when the probes are on.
func TestAcceptedConnectionsHaveNoKeepAliveTimer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	n := startCluster(t, 1)[0]
	c, err := net.Dial("tcp", n.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One request answered: the connection is accepted and served, then kept open, idle.
	if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", n.HTTP); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 ") {
		t.Fatalf("answer %q, %v", status, err)
	}
	server := c.RemoteAddr().(*net.TCPAddr).Port
	client := c.LocalAddr().(*net.TCPAddr).Port
	timer, ok := tcpTimer(t, server, client)
	if !ok {
		t.Fatalf("no socket from port %d to %d in /proc/net/tcp", server, client)
	}
	if timer == "02" {
		t.Fatalf("the server's side of an idle API connection has a keep-alive timer (tr %s): the listener set up keep-alive probes", timer)
	}
}

// tcpTimer returns the "tr" field (active timer) of the IPv4 socket with local port local and
// remote port remote.
func tcpTimer(t *testing.T, local, remote int) (string, bool) {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	want := [2]string{fmt.Sprintf(":%04X", local), fmt.Sprintf(":%04X", remote)}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[1], want[0]) || !strings.HasSuffix(f[2], want[1]) {
			continue
		}
		tr, _, _ := strings.Cut(f[5], ":")
		return tr, true
	}
	return "", false
}
