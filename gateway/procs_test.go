package gateway

// Helpers of the black-box tests: real imnode processes, talked to over HTTP and
// WebSocket only.

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/imnode/imnode/apiclient"
	"github.com/imnode/imnode/internal/proctest"
)

func startCluster(t *testing.T, size int) []*proctest.Proc { return proctest.StartCluster(t, size) }

const testSecret = proctest.Secret

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
