package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/valyala/fasthttp"

	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/internal/pki"
)

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func mustStream(t *testing.T, key, id string, store *pki.Store) (*authStream, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	s, err := newAuthStream("127.0.0.1:0", newPeerAuth(key, id, store), slog.New(slog.NewTextHandler(lb, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, lb
}

// acceptOne returns the next connection raft would get from s, or nil within wait.
func acceptOne(s *authStream, wait time.Duration) net.Conn {
	got := make(chan net.Conn, 1)
	go func() {
		c, err := s.Accept()
		if err == nil {
			got <- c
		}
	}()
	select {
	case c := <-got:
		return c
	case <-time.After(wait):
		return nil
	}
}

func TestHandshakeHandsOnlyProvenConnectionsToRaft(t *testing.T) {
	srv, _ := mustStream(t, "key-a", "n1", nil)
	cli, _ := mustStream(t, "key-a", "n2", nil)
	c, err := cli.Dial(raftAddr("127.0.0.1:"+portOf(srv)), time.Second)
	if err != nil {
		t.Fatalf("dial with the same key: %v", err)
	}
	defer c.Close()
	in := acceptOne(srv, 2*time.Second)
	if in == nil {
		t.Fatal("an authenticated connection did not reach Accept")
	}
	defer in.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("got %q, %v; want the bytes written after the handshake", buf, err)
	}
}

func TestHandshakeRefusesAnotherClusterKeyBothWays(t *testing.T) {
	srv, srvLog := mustStream(t, "key-a", "n1", nil)
	stranger, _ := mustStream(t, "key-b", "s1", nil)
	// The stranger dials us: we answer our proof, its answer is wrong, raft never sees it.
	if c, err := stranger.Dial(raftAddr("127.0.0.1:"+portOf(srv)), time.Second); err == nil {
		c.Close()
		t.Fatal("the stranger accepted our proof made with another key")
	} else if !errors.Is(err, ErrPeerAuth) {
		t.Fatalf("got %v, want ErrPeerAuth", err)
	}
	if c := acceptOne(srv, 300*time.Millisecond); c != nil {
		t.Fatal("a connection from a node with another cluster key reached raft")
	}
	// We dial the stranger: its proof is wrong and we send it nothing more.
	if _, err := srv.Dial(raftAddr("127.0.0.1:"+portOf(stranger)), time.Second); !errors.Is(err, ErrPeerAuth) {
		t.Fatalf("dial to a stranger: got %v, want ErrPeerAuth", err)
	}
	if err := srv.prove("127.0.0.1:"+portOf(stranger), "s1", time.Second); !errors.Is(err, ErrPeerAuth) {
		t.Fatalf("prove a stranger: got %v, want ErrPeerAuth", err)
	}
	waitFor(t, func() bool { return srv.refused.Load() >= 1 })
	if !strings.Contains(srvLog.String(), "raft connection refused") || !strings.Contains(srvLog.String(), "remote=127.0.0.1:") {
		t.Fatalf("refusal not logged with the remote address; log:\n%s", srvLog)
	}
}

func TestRawRaftRPCIsRefused(t *testing.T) {
	srv, srvLog := mustStream(t, "key-a", "n1", nil)
	c, err := net.Dial("tcp", "127.0.0.1:"+portOf(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// What raft's NetworkTransport writes for a RequestVote: the RPC type, then msgpack.
	if _, err := c.Write(append([]byte{1}, bytes.Repeat([]byte{0x85}, 64)...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	// Closed by the listener: EOF, or a reset since our bytes were never read.
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed by the listener: %v", err)
	}
	if got := acceptOne(srv, 300*time.Millisecond); got != nil {
		t.Fatal("a raw raft RPC reached raft")
	}
	waitFor(t, func() bool { return strings.Contains(srvLog.String(), "not an imnode handshake") })
}

func TestProveChecksTheNodeID(t *testing.T) {
	srv, _ := mustStream(t, "key-a", "n1", nil)
	cli, _ := mustStream(t, "key-a", "n2", nil)
	addr := "127.0.0.1:" + portOf(srv)
	if err := cli.prove(addr, "n1", time.Second); err != nil {
		t.Fatalf("prove n1: %v", err)
	}
	if err := cli.prove(addr, "n9", time.Second); !errors.Is(err, ErrPeerAuth) {
		t.Fatalf("prove n9 at n1's address: got %v, want ErrPeerAuth", err)
	}
	if c := acceptOne(srv, 300*time.Millisecond); c != nil {
		t.Fatal("a proof connection was handed to raft")
	}
}

func mustCA(t *testing.T, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustStore(t *testing.T, ca *pki.CA, dir string) *pki.Store {
	t.Helper()
	files, err := ca.WriteNode(dir, "node", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := pki.Load(files, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMutualTLSRefusesAnotherCA(t *testing.T) {
	caA, caB := mustCA(t, "A"), mustCA(t, "B")
	stA1 := mustStore(t, caA, filepath.Join(t.TempDir(), "a1"))
	stA2 := mustStore(t, caA, filepath.Join(t.TempDir(), "a2"))
	stB := mustStore(t, caB, filepath.Join(t.TempDir(), "b"))
	srv, _ := mustStream(t, "key", "n1", stA1)
	good, _ := mustStream(t, "key", "n2", stA2)
	bad, _ := mustStream(t, "key", "s1", stB) // the right cluster key, a certificate from another CA
	addr := "127.0.0.1:" + portOf(srv)

	c, err := good.Dial(raftAddr(addr), time.Second)
	if err != nil {
		t.Fatalf("dial with the cluster's CA: %v", err)
	}
	c.Close()
	if in := acceptOne(srv, 2*time.Second); in == nil {
		t.Fatal("a node with the cluster's CA did not reach raft")
	} else {
		in.Close()
	}
	if _, err := bad.Dial(raftAddr(addr), time.Second); err == nil {
		t.Fatal("a node with another CA's certificate connected")
	}
	if err := srv.prove("127.0.0.1:"+portOf(bad), "s1", time.Second); err == nil {
		t.Fatal("a node with another CA's certificate proved itself")
	}
	var ve *pki.VerifyError
	if err := srv.prove("127.0.0.1:"+portOf(bad), "s1", time.Second); !errors.As(err, &ve) {
		t.Fatalf("got %v, want a certificate verification error", err)
	}
	if in := acceptOne(srv, 300*time.Millisecond); in != nil {
		t.Fatal("a node with another CA's certificate reached raft")
	}
}

// TestForwardToABadCertificateIsNotSent: a node whose certificate the cluster's CA did not
// sign gets no request, and the failure is one that proves it (so the API answers 1801).
func TestForwardToABadCertificateIsNotSent(t *testing.T) {
	caA, caB := mustCA(t, "A"), mustCA(t, "B")
	ours := mustStore(t, caA, filepath.Join(t.TempDir(), "ours"))
	theirs := mustStore(t, caB, filepath.Join(t.TempDir(), "theirs"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served sync.WaitGroup
	var hits atomic.Int32
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { hits.Add(1) }}
	served.Add(1)
	go func() { defer served.Done(); _ = srv.Serve(tlsListener(ln, theirs)) }()
	t.Cleanup(func() { _ = srv.Shutdown(); served.Wait() })

	cfg := config.Default()
	n := &Node{cfg: cfg, tls: ours}
	n.SetMembers(staticMembers{{NodeID: "leader", HTTPAddr: ln.Addr().String()}})
	f := newHTTPForwarder(n)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = f.forward(ctx, "leader", PathPropose, []byte("x"))
	if !errors.Is(err, ErrNotSent) {
		t.Fatalf("got %v, want an error wrapping ErrNotSent", err)
	}
	var ve *pki.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a certificate verification error", err)
	}
	if h := hits.Load(); h != 0 {
		t.Fatalf("the node with a bad certificate got %d requests", h)
	}
}

func raftAddr(a string) raft.ServerAddress { return raft.ServerAddress(a) }

func tlsListener(ln net.Listener, st *pki.Store) net.Listener {
	return tls.NewListener(ln, st.ServerConfig(false))
}

type staticMembers []MemberInfo

func (s staticMembers) Members() []MemberInfo { return s }

func portOf(s *authStream) string {
	_, p, _ := net.SplitHostPort(s.Addr().String())
	return p
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 3 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
