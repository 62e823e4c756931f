package main

// Black-box tests: they start real imnode processes and talk to them over HTTP only.

import (
	"fmt"
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

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// mustBinary returns the imnode binary: $IMNODE_BIN (set by `make test`) or one built once
// for this test run.
func mustBinary(t *testing.T) string {
	t.Helper()
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
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is one imnode process.
type proc struct {
	t       *testing.T
	id      string
	dataDir string
	http    string
	raft    string
	gossip  string
	args    []string
	cmd     *exec.Cmd
	logPath string
}

func newProc(t *testing.T, id, dataDir string) *proc {
	return &proc{t: t, id: id, dataDir: dataDir,
		http:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		raft:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		gossip: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
}

func (p *proc) start(extra ...string) {
	p.t.Helper()
	args := []string{"-node-id", p.id, "-data-dir", p.dataDir, "-http-addr", p.http,
		"-raft-addr", p.raft, "-gossip-addr", p.gossip}
	args = append(args, p.args...)
	args = append(args, extra...)
	p.cmd = exec.Command(mustBinary(p.t), args...)
	p.logPath = filepath.Join(filepath.Dir(p.dataDir), p.id+".log")
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	cmd := p.cmd
	p.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		f.Close()
	})
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	_ = p.cmd.Process.Signal(sig)
	if sig == syscall.SIGSTOP || sig == syscall.SIGCONT {
		return
	}
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.t.Fatalf("%s did not exit after %v; log:\n%s", p.id, sig, p.tail())
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) client() *apiclient.Client { return apiclient.New(p.http) }

// waitReady waits for GET /readyz 200.
func (p *proc) waitReady() {
	p.t.Helper()
	c := p.client()
	c.Timeout = time.Second
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := c.Get("readyz"); err == nil && r.HTTPStatus == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s not ready within 30 s; log:\n%s", p.id, p.tail())
}

// startCluster starts size nodes that bootstrap together.
func startCluster(t *testing.T, size int) []*proc {
	t.Helper()
	dir := t.TempDir()
	var procs []*proc
	var gossips []string
	for i := 1; i <= size; i++ {
		p := newProc(t, fmt.Sprintf("n%d", i), filepath.Join(dir, fmt.Sprintf("n%d", i)))
		procs = append(procs, p)
		gossips = append(gossips, p.gossip)
	}
	for _, p := range procs {
		p.args = []string{"-bootstrap-expect", fmt.Sprint(size), "-join", strings.Join(gossips, ",")}
		p.start()
	}
	for _, p := range procs {
		p.waitReady()
	}
	return procs
}

const secret = "tuoyun"

func mustAdmin(t *testing.T, p *proc) *apiclient.Client {
	t.Helper()
	c := p.client()
	tok, err := c.TokenFor(secret, "openIM123456")
	if err != nil {
		t.Fatal(err)
	}
	return c.WithToken(tok)
}

// mustOK posts body to route and fails unless errCode is 0.
func mustOK(t *testing.T, c *apiclient.Client, route string, body interface{}) *apiclient.Response {
	t.Helper()
	r, err := c.Post(route, body)
	if err != nil {
		t.Fatalf("%s: %v", route, err)
	}
	if r.ErrCode != 0 {
		t.Fatalf("%s: errCode %d %s (body %s)", route, r.ErrCode, r.ErrMsg, r.Raw)
	}
	return r
}

func mustRegister(t *testing.T, c *apiclient.Client, uid string) {
	t.Helper()
	mustOK(t, c, "auth/user_register", map[string]interface{}{"secret": secret, "platform": 1, "uid": uid, "name": uid})
}

func leaderOf(t *testing.T, procs []*proc) *proc {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range procs {
			if p.cmd.ProcessState != nil {
				continue
			}
			c := mustAdmin(t, p)
			r, err := c.Get("cluster/status")
			if err != nil || r.ErrCode != 0 {
				continue
			}
			var st struct {
				State string `json:"state"`
			}
			if r.DecodeData(&st) == nil && st.State == "leader" {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no leader within 15 s")
	return nil
}

func digestOf(t *testing.T, p *proc) (uint64, string) {
	t.Helper()
	r := mustOKGet(t, mustAdmin(t, p), "cluster/digest")
	var d struct {
		AppliedIndex uint64 `json:"appliedIndex"`
		Digest       string `json:"digest"`
	}
	if err := r.DecodeData(&d); err != nil {
		t.Fatal(err)
	}
	return d.AppliedIndex, d.Digest
}

func mustOKGet(t *testing.T, c *apiclient.Client, path string) *apiclient.Response {
	t.Helper()
	r, err := c.Get(path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if r.ErrCode != 0 {
		t.Fatalf("GET %s: errCode %d %s", path, r.ErrCode, r.ErrMsg)
	}
	return r
}

// waitSameDigest waits until every running node reports the same state digest.
func waitSameDigest(t *testing.T, procs []*proc) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		seen = seen[:0]
		for _, p := range procs {
			_, d := digestOf(t, p)
			seen = append(seen, d)
		}
		same := true
		for _, d := range seen {
			same = same && d == seen[0]
		}
		if same {
			return seen[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("digests never converged: %v", seen)
	return ""
}

func execOut(bin string, args ...string) ([]byte, error) {
	return exec.Command(bin, args...).CombinedOutput()
}
