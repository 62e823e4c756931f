package main

// Black-box tests: they start real imnode processes and talk to them over HTTP only.

import (
	"os/exec"
	"testing"
	"time"

	"github.com/imnode/imnode/apiclient"
	"github.com/imnode/imnode/internal/proctest"
)

// proc is a real imnode process (see internal/proctest).
type proc = proctest.Proc

func startCluster(t *testing.T, size int) []*proc { return proctest.StartCluster(t, size) }

func newProc(t *testing.T, id, dataDir string) *proc { return proctest.New(t, id, dataDir) }

func mustBinary(t *testing.T) string { return proctest.Binary(t) }

const secret = proctest.Secret

func mustAdmin(t *testing.T, p *proc) *apiclient.Client {
	t.Helper()
	return p.AdminClient()
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
			if !p.Running() {
				continue
			}
			tok, err := p.Client().TokenFor(secret, proctest.Admin)
			if err != nil {
				continue // starting, or cut off: ask the others
			}
			r, err := p.Client().WithToken(tok).Get("cluster/status")
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
