package jepsen

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imnode/imnode/apiclient"
	"github.com/imnode/imnode/internal/pki"
)

// Admin credentials of the example configuration that bin/imnode starts with.
const (
	adminSecret = "tuoyun"
	adminUID    = "openIM123456"
)

// Process states of a node.
const (
	stateRunning = "running"
	statePaused  = "paused"
	stateDead    = "dead"
	stateRemoved = "removed"
)

// Node is one imnode process of the cluster under test, on its own loopback address.
type Node struct {
	ID     string
	IP     string
	HTTP   string
	Raft   string
	Gossip string
	Dir    string
	Log    string

	// client talks to this node with the admin token; stale is the same with
	// X-Consistency: stale.
	client *apiclient.Client
	stale  *apiclient.Client

	mu    sync.Mutex
	state string
	cmd   *exec.Cmd
	done  chan struct{}
}

// State returns the node's process state (running, paused, dead, removed).
func (n *Node) State() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// Cluster is the set of imnode processes of one run. Nodes are started with the same
// -bootstrap-expect and join each other over gossip.
type Cluster struct {
	bin    string
	dir    string
	port   int
	expect int
	logf   func(format string, args ...interface{})

	mu      sync.RWMutex
	members []*Node // current members, in start order
	all     []*Node // every node ever started
	nextIP  int
	token   string

	// config is every node's config file, if any (UseTLS, SnapshotEvery); tlsConf the
	// clients' TLS settings (UseTLS).
	config  string
	tlsConf *tls.Config

	// Args are further flags for every node start (e.g. -message-retention).
	Args []string
}

// SnapshotEvery makes the nodes take a snapshot every n log entries (checked every second)
// and keep only n/6 entries behind it, so that a node that joins, restarts or was cut off is
// mostly sent the whole state (InstallSnapshot), not the log. Call it before the first Start.
func (c *Cluster) SnapshotEvery(n int) error {
	return c.addConfig(fmt.Sprintf("raft:\n  snapshotThreshold: %d\n  snapshotInterval: 1s\n  trailingLogs: %d\n",
		n, max(1, n/6)))
}

// addConfig appends top-level YAML keys to every node's config file, which it creates
// the first time.
func (c *Cluster) addConfig(yaml string) error {
	if c.config == "" {
		c.config = filepath.Join(c.dir, "imnode.yaml")
	}
	f, err := os.OpenFile(c.config, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(yaml); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// firstIP is the last byte of the first node's address: nodes use 127.0.0.11, .12, ...
const firstIP = 11

// NewCluster prepares (does not start) n nodes of bin under dir. All nodes use the same
// three ports on their own addresses; port is chosen free on every address from rng.
func NewCluster(bin, dir string, n int, rng *rand.Rand, logf func(string, ...interface{})) (*Cluster, error) {
	c := &Cluster{bin: bin, dir: dir, expect: n, logf: logf, nextIP: firstIP}
	// Addresses for the initial nodes and for a few membership changes.
	var ips []string
	for i := 0; i < n+16; i++ {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", firstIP+i))
	}
	for try := 0; try < 50 && c.port == 0; try++ {
		p := 21000 + 3*rng.Intn(2990)
		if portsFree(ips, p) {
			c.port = p
		}
	}
	if c.port == 0 {
		return nil, errors.New("no free port triple in 21000-29999 on 127.0.0.11+")
	}
	for i := 0; i < n; i++ {
		c.addNode()
	}
	return c, nil
}

func portsFree(ips []string, p int) bool {
	for _, ip := range ips {
		for _, port := range []int{p, p + 1, p + 2} {
			addr := net.JoinHostPort(ip, strconv.Itoa(port))
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return false
			}
			l.Close()
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				return false
			}
			u.Close()
		}
	}
	return true
}

// UseTLS makes the cluster run in its secure mode: a CA made for the run signs one
// certificate for every node address; nodes get tls.certFile, keyFile and caFile (mutual TLS
// on raft, verified forwarding, HTTPS API) and a gossip key, and the clients verify the
// API's certificate. Call it before the first Start.
func (c *Cluster) UseTLS() error {
	ca, err := pki.NewCA("imjepsen run CA", 30*24*time.Hour)
	if err != nil {
		return err
	}
	hosts := []string{"127.0.0.1"}
	for i := 0; i < c.expect+16; i++ {
		hosts = append(hosts, fmt.Sprintf("127.0.0.%d", firstIP+i))
	}
	files, err := ca.WriteNode(filepath.Join(c.dir, "tls"), "node", hosts)
	if err != nil {
		return err
	}
	gossipKey := base64.StdEncoding.EncodeToString([]byte("imjepsen-gossip-key-32-bytes-abc"))
	yaml := fmt.Sprintf("gossipKey: %q\ntls:\n  certFile: %q\n  keyFile: %q\n  caFile: %q\n",
		gossipKey, files.CertFile, files.KeyFile, files.CAFile)
	if err := c.addConfig(yaml); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	c.tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.all {
		n.client = apiclient.NewTLS(n.HTTP, c.tlsConf)
		n.client.Timeout = 3 * time.Second
		n.client.Token = c.token
		n.stale = n.client.WithHeader("X-Consistency", "stale")
	}
	return nil
}

// Ports returns the node ports (http, raft, gossip) every node of the run uses.
func (c *Cluster) Ports() []int { return []int{c.port, c.port + 1, c.port + 2} }

// addNode allocates the next address and appends a not yet started member.
func (c *Cluster) addNode() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := len(c.all) + 1
	ip := fmt.Sprintf("127.0.0.%d", c.nextIP)
	c.nextIP++
	id := fmt.Sprintf("n%d", i)
	n := &Node{
		ID: id, IP: ip,
		HTTP:   net.JoinHostPort(ip, strconv.Itoa(c.port)),
		Raft:   net.JoinHostPort(ip, strconv.Itoa(c.port+1)),
		Gossip: net.JoinHostPort(ip, strconv.Itoa(c.port+2)),
		Dir:    filepath.Join(c.dir, "data", id),
		Log:    filepath.Join(c.dir, "nodes", id+".log"),
		state:  stateDead,
	}
	n.client = apiclient.New(n.HTTP)
	if c.tlsConf != nil {
		n.client = apiclient.NewTLS(n.HTTP, c.tlsConf)
	}
	n.client.Timeout = 3 * time.Second
	n.client.Token = c.token
	n.stale = n.client.WithHeader("X-Consistency", "stale")
	c.members = append(c.members, n)
	c.all = append(c.all, n)
	return n
}

// Members returns the current members (including dead or paused ones).
func (c *Cluster) Members() []*Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]*Node(nil), c.members...)
}

// Running returns the members whose process runs (not paused, not dead).
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Members() {
		if n.State() == stateRunning {
			out = append(out, n)
		}
	}
	return out
}

// joinList is the gossip addresses of the members other than self.
func (c *Cluster) joinList(self *Node) string {
	var out []string
	for _, n := range c.Members() {
		if n != self {
			out = append(out, n.Gossip)
		}
	}
	return strings.Join(out, ",")
}

// Start starts n's process (first start or restart; the data dir is kept).
func (c *Cluster) Start(n *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == stateRunning || n.state == statePaused {
		return nil
	}
	if n.state == stateRemoved {
		return fmt.Errorf("start %s: node was removed", n.ID)
	}
	if err := os.MkdirAll(filepath.Dir(n.Log), 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"-node-id", n.ID, "-data-dir", n.Dir, "-http-addr", n.HTTP,
		"-raft-addr", n.Raft, "-gossip-addr", n.Gossip, "-bootstrap-expect", strconv.Itoa(c.expect)}
	if j := c.joinList(n); j != "" {
		args = append(args, "-join", j)
	}
	if c.config != "" {
		args = append(args, "-config", c.config)
	}
	args = append(args, c.Args...)
	fmt.Fprintf(lf, "==== jepsen: start %s %s\n", c.bin, strings.Join(args, " "))
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group (a ctrl-C of the runner must not reach the nodes before the runner
	// decides), and killed by the kernel if the runner dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", n.ID, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(done)
	}()
	n.cmd, n.done, n.state = cmd, done, stateRunning
	return nil
}

// Kill sends SIGKILL to n and waits for it to exit.
func (c *Cluster) Kill(n *Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.state == stateDead || n.state == stateRemoved {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		c.logf("kill %s: still not exited after 10s", n.ID)
	}
	n.state = stateDead
}

// Pause sends SIGSTOP to a running n.
func (c *Cluster) Pause(n *Node) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateRunning {
		return false
	}
	_ = n.cmd.Process.Signal(syscall.SIGSTOP)
	n.state = statePaused
	return true
}

// Resume sends SIGCONT to a paused n.
func (c *Cluster) Resume(n *Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != statePaused {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGCONT)
	n.state = stateRunning
}

// Remove kills n and takes it out of the member list for good.
func (c *Cluster) Remove(n *Node) {
	c.Kill(n)
	n.mu.Lock()
	n.state = stateRemoved
	n.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m == n {
			c.members = append(c.members[:i], c.members[i+1:]...)
			break
		}
	}
}

// Shutdown kills every process the cluster started. It is safe to call more than once.
func (c *Cluster) Shutdown() {
	c.mu.RLock()
	all := append([]*Node(nil), c.all...)
	c.mu.RUnlock()
	for _, n := range all {
		n.mu.Lock()
		if n.cmd != nil && (n.state == stateRunning || n.state == statePaused) {
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			_ = n.cmd.Process.Signal(syscall.SIGCONT)
			select {
			case <-n.done:
			case <-time.After(10 * time.Second):
			}
			n.state = stateDead
		}
		n.mu.Unlock()
	}
}

// Token returns the admin token (after Setup).
func (c *Cluster) Token() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token
}

// Login registers the admin user if needed and gets its token, trying each running node
// until deadline.
func (c *Cluster) Login(deadline time.Time) error {
	var last error
	for i := 0; i < 10000 && time.Now().Before(deadline); i++ {
		for _, n := range c.Running() {
			r, err := n.client.Post("auth/user_register", map[string]interface{}{
				"secret": adminSecret, "platform": 1, "uid": adminUID, "name": "jepsen admin"})
			if err != nil || (r.ErrCode != 0 && r.ErrCode != 1102) {
				last = fmt.Errorf("register admin on %s: %v %v", n.ID, err, errText(r))
				continue
			}
			tok, err := n.client.TokenFor(adminSecret, adminUID)
			if err != nil {
				last = err
				continue
			}
			c.mu.Lock()
			c.token = tok
			for _, m := range c.all {
				m.client.Token, m.stale.Token = tok, tok
			}
			c.mu.Unlock()
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("admin login: %v", last)
}

func errText(r *apiclient.Response) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("errCode %d %s", r.ErrCode, r.ErrMsg)
}

// Status is the part of GET /cluster/status the suite uses.
type Status struct {
	NodeID       string `json:"nodeID"`
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LeaderID     string `json:"leaderID"`
	AppliedIndex uint64 `json:"appliedIndex"`
	Members      []struct {
		NodeID string `json:"nodeID"`
		Role   string `json:"role"`
		Gossip string `json:"gossip"`
	} `json:"members"`
}

// status asks n for its /cluster/status with a short timeout.
func (c *Cluster) status(n *Node) (*Status, error) {
	cl := n.client.WithToken(c.Token())
	cl.Timeout = time.Second
	r, err := cl.Get("cluster/status")
	if err != nil {
		return nil, err
	}
	if r.ErrCode != 0 {
		return nil, fmt.Errorf("cluster/status on %s: %s", n.ID, errText(r))
	}
	var s Status
	if err := r.DecodeData(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Leader returns the running member that says it is leader with the highest term, or nil.
func (c *Cluster) Leader() *Node {
	var best *Node
	var term uint64
	for _, n := range c.Running() {
		s, err := c.status(n)
		if err == nil && s.State == "leader" && (best == nil || s.Term > term) {
			best, term = n, s.Term
		}
	}
	return best
}

// WaitReady waits until every running member answers /readyz 200, or deadline.
func (c *Cluster) WaitReady(deadline time.Time) error {
	for i := 0; ; i++ {
		var notReady []string
		for _, n := range c.Running() {
			cl := *n.client
			cl.Timeout = time.Second
			r, err := cl.Get("readyz")
			if err != nil || r.HTTPStatus != 200 {
				notReady = append(notReady, n.ID)
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		if time.Now().After(deadline) || i >= 10000 {
			return fmt.Errorf("not ready: %s", strings.Join(notReady, ","))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Digest is a node's answer to GET /cluster/digest.
type Digest struct {
	Node         string `json:"node"`
	AppliedIndex uint64 `json:"appliedIndex"`
	Digest       string `json:"digest"`
	Err          string `json:"err,omitempty"`
}

// digest asks n for its applied index and state digest.
func (c *Cluster) digest(n *Node) Digest {
	d := Digest{Node: n.ID}
	r, err := n.client.WithToken(c.Token()).Get("cluster/digest")
	switch {
	case err != nil:
		d.Err = err.Error()
	case r.ErrCode != 0 || r.HTTPStatus != 200:
		d.Err = fmt.Sprintf("HTTP %d %s", r.HTTPStatus, errText(r))
	default:
		if err := r.DecodeData(&d); err != nil {
			d.Err = "decode: " + err.Error()
		}
		d.Node = n.ID
	}
	return d
}

// Digests polls every member until all answer the same applied index (or deadline) and
// returns the last answers, sorted by node.
func (c *Cluster) Digests(deadline time.Time) []Digest {
	for i := 0; ; i++ {
		var ds []Digest
		same := true
		for _, n := range c.Members() {
			d := c.digest(n)
			ds = append(ds, d)
			if d.Err != "" || d.AppliedIndex != ds[0].AppliedIndex {
				same = false
			}
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].Node < ds[j].Node })
		if same || time.Now().After(deadline) || i >= 10000 {
			return ds
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// describe is a one-line summary of the members for the report.
func (c *Cluster) describe() string {
	var parts []string
	for _, n := range c.Members() {
		parts = append(parts, fmt.Sprintf("%s@%s(%s)", n.ID, n.IP, n.State()))
	}
	return strings.Join(parts, " ")
}

// marshalBody marshals a request body once, so that retries resend identical bytes.
func marshalBody(v interface{}) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // bodies are built by the suite from plain maps
	}
	return b
}
