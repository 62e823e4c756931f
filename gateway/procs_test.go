package gateway

// Helpers of the black-box tests: real imnode processes, talked to over HTTP and
// WebSocket only.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/imnode/imnode/apiclient"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// mustBinary returns the imnode binary: $IMNODE_BIN (set by `make test`) or one built
// once for this test run.
func mustBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real imnode processes; skipped with -short")
	}
	binOnce.Do(func() {
		if p := os.Getenv("IMNODE_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "imnode-gw-bin")
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

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is one imnode process.
type proc struct {
	t       *testing.T
	id      string
	http    string
	cmd     *exec.Cmd
	logPath string
}

// startCluster starts size nodes that bootstrap together and waits until all are ready.
func startCluster(t *testing.T, size int) []*proc {
	t.Helper()
	bin := mustBinary(t)
	dir := t.TempDir()
	type addrs struct{ http, raft, gossip string }
	var all []addrs
	var gossips []string
	for i := 0; i < size; i++ {
		a := addrs{freeAddr(t), freeAddr(t), freeAddr(t)}
		all = append(all, a)
		gossips = append(gossips, a.gossip)
	}
	var procs []*proc
	for i, a := range all {
		p := &proc{t: t, id: fmt.Sprintf("n%d", i+1), http: a.http}
		p.logPath = filepath.Join(dir, p.id+".log")
		f, err := os.Create(p.logPath)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, "-node-id", p.id, "-data-dir", filepath.Join(dir, p.id),
			"-http-addr", a.http, "-raft-addr", a.raft, "-gossip-addr", a.gossip,
			"-bootstrap-expect", fmt.Sprint(size), "-join", strings.Join(gossips, ","))
		p.cmd.Stdout, p.cmd.Stderr = f, f
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmd := p.cmd
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			f.Close()
		})
		procs = append(procs, p)
	}
	for _, p := range procs {
		p.waitReady()
	}
	return procs
}

func (p *proc) waitReady() {
	p.t.Helper()
	c := apiclient.New(p.http)
	c.Timeout = time.Second
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := c.Get("readyz"); err == nil && r.HTTPStatus == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s not ready within 40 s; log:\n%s", p.id, p.tail())
}

// kill9 kills the process without a chance to close anything.
func (p *proc) kill9() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

const testSecret = "tuoyun"

// mustPost posts body and fails unless errCode is 0.
func mustPost(t *testing.T, c *apiclient.Client, route string, body any) *apiclient.Response {
	t.Helper()
	r, err := c.Post(route, body)
	if err != nil {
		t.Fatalf("%s: %v", route, err)
	}
	if r.ErrCode != 0 {
		t.Fatalf("%s: errCode %d %s", route, r.ErrCode, r.ErrMsg)
	}
	return r
}

// mustUser registers uid through addr and returns its token.
func mustUser(t *testing.T, addr, uid string) string {
	t.Helper()
	r := mustPost(t, apiclient.New(addr), "auth/user_register",
		map[string]any{"secret": testSecret, "platform": 1, "uid": uid, "name": "name-" + uid})
	var d struct {
		Token string `json:"token"`
	}
	if err := r.DecodeData(&d); err != nil || d.Token == "" {
		t.Fatalf("register %s: no token (%v)", uid, err)
	}
	return d.Token
}

// wsClient is a client that reconnects across nodes and resumes from the last seq it saw
// in each conversation, recording everything it received.
type wsClient struct {
	t     *testing.T
	token string

	mu       sync.Mutex
	got      map[string][]uint64 // conversationID → seqs in arrival order
	texts    map[string]string   // msgID → text
	lastSeq  map[string]uint64
	closes   []string
	ws       *websocket.Conn
	resumed  bool
	received chan struct{}
}

func newWSClient(t *testing.T, token string) *wsClient {
	return &wsClient{t: t, token: token, got: map[string][]uint64{}, texts: map[string]string{},
		lastSeq: map[string]uint64{}, received: make(chan struct{}, 1)}
}

// connect dials addr and sends a resume with what it has seen, or a ping (live only) on
// the first connection when resume is false.
func (c *wsClient) connect(addr string, resume bool) error {
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?token="+c.token, nil)
	if err != nil {
		return err
	}
	c.mu.Lock()
	seqs := map[string]uint64{}
	for k, v := range c.lastSeq {
		seqs[k] = v
	}
	c.ws = ws
	c.mu.Unlock()
	first := map[string]any{"type": "ping"}
	if resume {
		first = map[string]any{"type": "resume", "seqs": seqs}
	}
	if err := ws.WriteJSON(first); err != nil {
		return err
	}
	go c.readLoop(ws)
	return nil
}

func (c *wsClient) readLoop(ws *websocket.Conn) {
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.closes = append(c.closes, err.Error())
			c.mu.Unlock()
			return
		}
		var f struct {
			Type           string `json:"type"`
			ConversationID string `json:"conversationID"`
			Seq            uint64 `json:"seq"`
			MsgID          string `json:"msgID"`
			Content        struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		if json.Unmarshal(b, &f) != nil || f.Type != "msg" {
			continue
		}
		c.mu.Lock()
		c.got[f.ConversationID] = append(c.got[f.ConversationID], f.Seq)
		c.texts[f.MsgID] = f.Content.Text
		c.lastSeq[f.ConversationID] = max(c.lastSeq[f.ConversationID], f.Seq)
		c.mu.Unlock()
		select {
		case c.received <- struct{}{}:
		default:
		}
	}
}

// waitSeqs waits until conv has reached seq n.
func (c *wsClient) waitSeq(conv string, n uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		ok := c.lastSeq[conv] >= n
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-c.received:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// checkExactly fails unless conv's seqs arrived as exactly 1..n, in order.
func (c *wsClient) checkExactly(conv string, n uint64) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	seqs := c.got[conv]
	for i, s := range seqs {
		if s != uint64(i+1) {
			c.t.Fatalf("%s: arrival %d is seq %d, want %d (gap or duplicate); all: %v", conv, i, s, i+1, seqs)
		}
	}
	if uint64(len(seqs)) != n {
		c.t.Fatalf("%s: got %d messages, want %d", conv, len(seqs), n)
	}
}

func (c *wsClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ws != nil {
		_ = c.ws.Close()
	}
}
