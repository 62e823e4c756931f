package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imnode/imnode/apiclient"
	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/internal/pki"
	"github.com/imnode/imnode/internal/proctest"
	"github.com/imnode/imnode/node"
)

// clusterStatus reads /cluster/status through c.
func clusterStatus(t *testing.T, c *apiclient.Client) node.Status {
	t.Helper()
	var st node.Status
	if err := mustOKGet(t, c, "cluster/status").DecodeData(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func memberOf(st node.Status, id string) (node.Member, bool) {
	for _, m := range st.Members {
		if m.NodeID == id {
			return m, true
		}
	}
	return node.Member{}, false
}

// waitMember waits (20 s at most) until the status through c shows member id as ok says.
func waitMember(t *testing.T, c *apiclient.Client, id string, ok func(node.Member) bool) node.Member {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, seen := memberOf(clusterStatus(t, c), id)
		if seen && ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s never as expected; last seen %+v (listed: %v)", id, m, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func writeConfig(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// strangerHoldsNothing stops the stranger and checks that its own state file has none of
// the cluster's data (the stranger has no leader, so it cannot even issue a token).
func strangerHoldsNothing(t *testing.T, s *proc, uid string) {
	t.Helper()
	s.Signal(syscall.SIGINT)
	f, err := fsm.Open(filepath.Join(s.DataDir, "fsm.db"), fsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	uids, err := f.AllUIDs()
	if err != nil {
		t.Fatal(err)
	}
	if contains(uids, uid) || f.AppliedIndex() != 0 {
		t.Fatalf("the stranger applied %d entries and holds users %v; want nothing of the cluster's", f.AppliedIndex(), uids)
	}
}

// TestStrangerWithAnotherClusterKeyStaysOut: a node that -joins with another cluster key is
// seen over gossip but never configured and never replicated to; a raw client writing a
// raft RPC to the raft port is disconnected and logged, and the cluster goes on.
func TestStrangerWithAnotherClusterKeyStaysOut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	n1 := proctest.New(t, "n1", filepath.Join(dir, "n1"))
	n1.Start()
	n1.WaitReady()
	admin := mustAdmin(t, n1)
	mustRegister(t, n1.Client(), "alice")
	before := clusterStatus(t, admin)

	s := proctest.New(t, "stranger", filepath.Join(dir, "stranger"))
	s.Start("-join", n1.Gossip, "-config", writeConfig(t, dir, "other.yaml", "clusterKey: another-key\n"))
	m := waitMember(t, admin, "stranger", func(m node.Member) bool { return m.Reason != "" && !strings.Contains(m.Reason, "not verified yet") })
	if m.Role != node.RoleNone || !strings.Contains(m.Reason, "cluster key") {
		t.Fatalf("stranger shown as %+v; want role none and a reason naming the cluster key", m)
	}
	time.Sleep(3 * time.Second) // several reconcile rounds
	if m, _ := memberOf(clusterStatus(t, admin), "stranger"); m.Role != node.RoleNone {
		t.Fatalf("stranger became %s", m.Role)
	}
	mustRegister(t, n1.Client(), "bob")
	strangerHoldsNothing(t, s, "alice")
	if !strings.Contains(n1.Tail()+readLog(t, n1), "gossip member refused") {
		t.Fatalf("the refusal is not in n1's log:\n%s", n1.Tail())
	}

	// A raw raft RPC (RequestVote with a huge term) on the raft port.
	c, err := net.Dial("tcp", n1.Raft)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(append([]byte{1}, []byte("\x85\xa4Term\xcf\x00\x00\x00\x00\x00\x01\x00\x00")...))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("raw raft client not disconnected: %v", err)
	}
	c.Close()
	after := clusterStatus(t, admin)
	if after.Term != before.Term || after.State != "leader" {
		t.Fatalf("after the raw RPC: term %d state %s, want term %d leader", after.Term, after.State, before.Term)
	}
	mustRegister(t, n1.Client(), "carol")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(readLog(t, n1), "not an imnode handshake") {
		if time.Now().After(deadline) {
			t.Fatalf("the raw client's refusal is not logged:\n%s", n1.Tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readLog(t *testing.T, p *proc) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(p.DataDir), p.ID+".log"))
	return string(b)
}

// TestMutualTLSClusterRefusesAnotherCA: in the secure mode a node with the cluster's CA joins
// and becomes a voter; one with the right cluster key but a certificate from another CA stays
// out and holds nothing; a renewed certificate is served after SIGHUP without a restart.
func TestMutualTLSClusterRefusesAnotherCA(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	caA, err := pki.NewCA("cluster CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caB, err := pki.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gossipKey := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	conf := func(name string, ca *pki.CA) string {
		f, err := ca.WriteNode(filepath.Join(dir, name), "node", []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		return writeConfig(t, dir, name+".yaml", fmt.Sprintf("gossipKey: %s\ntls:\n  certFile: %s\n  keyFile: %s\n  caFile: %s\n",
			gossipKey, f.CertFile, f.KeyFile, f.CAFile))
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caA.CertPEM())
	client := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	n1 := proctest.New(t, "n1", filepath.Join(dir, "d1"))
	n1.TLS = client
	n1.Start("-config", conf("n1", caA))
	n1.WaitReady()
	admin := mustAdmin(t, n1)
	mustRegister(t, n1.Client(), "alice")

	n2 := proctest.New(t, "n2", filepath.Join(dir, "d2"))
	n2.TLS = client
	n2.Start("-join", n1.Gossip, "-config", conf("n2", caA))
	poolB := x509.NewCertPool()
	poolB.AppendCertsFromPEM(caB.CertPEM())
	s := proctest.New(t, "stranger", filepath.Join(dir, "ds"))
	s.TLS = &tls.Config{RootCAs: poolB, MinVersion: tls.VersionTLS12}
	s.Start("-join", n1.Gossip, "-config", conf("stranger", caB))

	waitMember(t, admin, "n2", func(m node.Member) bool { return m.Role == node.RoleVoter })
	m := waitMember(t, admin, "stranger", func(m node.Member) bool { return m.Reason != "" && !strings.Contains(m.Reason, "not verified yet") })
	if m.Role != node.RoleNone || !strings.Contains(m.Reason, "certificate") {
		t.Fatalf("stranger shown as %+v; want role none and a certificate reason", m)
	}
	// A write through the follower is forwarded over verified HTTPS and read back.
	mustRegister(t, n2.Client(), "bob")
	r := mustOK(t, mustAdmin(t, n2), "manager/get_all_users_uid", map[string]string{"operationID": "x"})
	if !strings.Contains(string(r.Raw), "alice") || !strings.Contains(string(r.Raw), "bob") {
		t.Fatalf("n2 reads %s, want alice and bob", r.Raw)
	}
	time.Sleep(2 * time.Second)
	if m, _ := memberOf(clusterStatus(t, admin), "stranger"); m.Role != node.RoleNone {
		t.Fatalf("stranger became %s", m.Role)
	}
	strangerHoldsNothing(t, s, "alice")

	// Certificate renewal: new files, SIGHUP, the next handshake gets the new certificate.
	serial := func() string {
		c, err := tls.Dial("tcp", n1.HTTP, client)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	old := serial()
	if _, err := caA.WriteNode(filepath.Join(dir, "n1"), "node", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	_ = n1.Cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for serial() == old {
		if time.Now().After(deadline) {
			t.Fatalf("still serving the old certificate after SIGHUP; log:\n%s", n1.Tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustRegister(t, n2.Client(), "carol") // forwarding and raft still work
}
