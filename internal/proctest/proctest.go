// Package proctest starts real imnode processes for black-box tests: it builds (or finds)
// the binary, picks free loopback ports, starts nodes that bootstrap together, waits for
// readiness, sends signals and keeps each node's log for failure messages. Every process
// is killed when the test ends.
package proctest

import (
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imnode/imnode/apiclient"
)

// Secret and Admin are the defaults a test node runs with.
const (
	Secret = "tuoyun"
	Admin  = "openIM123456"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the imnode binary: $IMNODE_BIN (set by `make test`) or one built once per
// test binary. With -short it skips the test: these tests start real processes.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real imnode processes; skipped with -short")
	}
	binOnce.Do(func() {
		if p := os.Getenv("IMNODE_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "imnode-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "imnode")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/imnode/imnode/cmd/imnode").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Test nodes take ports from [portLow, portHigh): below the kernel's ephemeral range
// (32768-60999 by default), so a client socket of another test running in parallel
// cannot take a port between the moment it is chosen and the moment the node binds it;
// and away from the ports of make run / make cluster (10002-10024), jepsen (21000-29999)
// and imbench's tests (31900-31999).
const (
	portLow  = 11000
	portHigh = 20000
)

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// FreeAddr returns a loopback address whose port is free for TCP and UDP (gossip uses both)
// and has not been handed out before in this test binary.
func FreeAddr(t testing.TB) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for try := 0; try < 1000; try++ {
		port := portLow + rand.IntN(portHigh-portLow)
		if portsUsed[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		portsUsed[port] = true
		return addr
	}
	t.Fatal("no free loopback port in 11000-19999")
	return ""
}

// Proc is one imnode process (started, stopped and started again as a test needs).
type Proc struct {
	T       testing.TB
	ID      string
	DataDir string
	HTTP    string
	Raft    string
	Gossip  string
	// Args are passed on every start, after the address flags.
	Args []string
	// TLS, when set, makes Client speak HTTPS and verify the node with it.
	TLS     *tls.Config
	Cmd     *exec.Cmd
	logPath string
}

// New describes a node with free ports; Start runs it.
func New(t testing.TB, id, dataDir string) *Proc {
	return &Proc{T: t, ID: id, DataDir: dataDir, HTTP: FreeAddr(t), Raft: FreeAddr(t), Gossip: FreeAddr(t)}
}

// Start runs the node with its address flags, p.Args and extra.
func (p *Proc) Start(extra ...string) {
	p.T.Helper()
	args := []string{"-node-id", p.ID, "-data-dir", p.DataDir, "-http-addr", p.HTTP,
		"-raft-addr", p.Raft, "-gossip-addr", p.Gossip}
	args = append(append(args, p.Args...), extra...)
	p.Cmd = exec.Command(Binary(p.T), args...)
	p.logPath = filepath.Join(filepath.Dir(p.DataDir), p.ID+".log")
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.T.Fatal(err)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = f, f
	if err := p.Cmd.Start(); err != nil {
		p.T.Fatal(err)
	}
	cmd := p.Cmd
	p.T.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		f.Close()
	})
}

// Running reports whether the last started process has not exited (as far as Wait knows).
func (p *Proc) Running() bool { return p.Cmd != nil && p.Cmd.ProcessState == nil }

// Signal sends sig and, unless it is SIGSTOP or SIGCONT, waits (20 s at most) for the exit.
func (p *Proc) Signal(sig syscall.Signal) {
	p.T.Helper()
	_ = p.Cmd.Process.Signal(sig)
	if sig == syscall.SIGSTOP || sig == syscall.SIGCONT {
		return
	}
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.T.Fatalf("%s did not exit after %v; log:\n%s", p.ID, sig, p.Tail())
	}
}

// Tail returns the last 30 lines of the node's log.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// Client returns an API client of the node, without a token.
func (p *Proc) Client() *apiclient.Client {
	if p.TLS != nil {
		return apiclient.NewTLS(p.HTTP, p.TLS)
	}
	return apiclient.New(p.HTTP)
}

// AdminClient returns an API client with an administrator's token.
func (p *Proc) AdminClient() *apiclient.Client {
	p.T.Helper()
	c := p.Client()
	tok, err := c.TokenFor(Secret, Admin)
	if err != nil {
		p.T.Fatal(err)
	}
	return c.WithToken(tok)
}

// WaitReady waits (40 s at most) for GET /readyz 200.
func (p *Proc) WaitReady() {
	p.T.Helper()
	c := p.Client()
	c.Timeout = time.Second
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := c.Get("readyz"); err == nil && r.HTTPStatus == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.T.Fatalf("%s not ready within 40 s; log:\n%s", p.ID, p.Tail())
}

// Launch starts size nodes named prefix1..prefixN that bootstrap together, each with extra
// flags (e.g. -config FILE) after the cluster ones, without waiting for them.
func Launch(t testing.TB, prefix string, size int, extra ...string) []*Proc {
	t.Helper()
	dir := t.TempDir()
	var procs []*Proc
	var gossips []string
	for i := 1; i <= size; i++ {
		id := fmt.Sprintf("%s%d", prefix, i)
		p := New(t, id, filepath.Join(dir, id))
		procs = append(procs, p)
		gossips = append(gossips, p.Gossip)
	}
	for _, p := range procs {
		p.Args = append([]string{"-bootstrap-expect", fmt.Sprint(size), "-join", strings.Join(gossips, ",")}, extra...)
		p.Start()
	}
	return procs
}

// StartCluster starts size nodes n1..nN that bootstrap together, and waits until every
// one is ready.
func StartCluster(t testing.TB, size int) []*Proc {
	t.Helper()
	procs := Launch(t, "n", size)
	for _, p := range procs {
		p.WaitReady()
	}
	return procs
}
