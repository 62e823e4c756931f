package gateway

import (
	"encoding/json"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/imnode/imnode/fsm"
)

// phase is where a connection is in its life; see doc.go "Delivery".
type phase uint8

const (
	// phaseWaiting: registered, baseline read, waiting for a resume frame or ResumeWait.
	phaseWaiting phase = iota
	// phaseCatchUp: the writer replays from the store; live messages wait in pending.
	phaseCatchUp
	// phaseLive: the dispatcher queues live frames directly.
	phaseLive
	// phaseClosed: nothing more is delivered.
	phaseClosed
)

// outItem is one entry of a connection's send queue: a frame, or the marker that tells
// the writer to fill a gap before going on.
type outItem struct {
	data    []byte
	catchUp bool
	msg     bool // data is a message frame (for metrics)
}

// startReq is how delivery starts: with a resume (seqs non-nil) or live only.
type startReq struct {
	seqs map[string]uint64
}

// conn is one client connection. Its reader goroutine (the upgrade handler) reads and
// answers frames; its writer goroutine owns every write but close and pong frames.
type conn struct {
	g      *Gateway
	ws     *websocket.Conn
	uid    string
	admin  bool
	token  string
	remote net.Addr
	// platform and id are what presence shows of the connection; since is when it
	// registered.
	platform int
	id       uint64
	since    time.Time

	// baseline is the user's conversations with their max seq, read right after the
	// connection registered; it is the starting point of a live-only stream and the list
	// of conversations a resume replays.
	baseline []fsm.ConversationSeq

	mu    sync.Mutex
	phase phase
	// pos is the last seq written (or queued) per conversation. The writer owns it while
	// the phase is not live; the dispatcher (under mu) while it is.
	pos map[string]uint64
	// fromZero: a resumed connection wants every message of a conversation it did not
	// list, so an unknown conversation starts at seq 0 instead of at its first push.
	fromZero bool
	pending  []*fsm.Message
	out      []outItem
	started  bool
	startReq startReq

	closeCode   int
	closeReason string

	wake       chan struct{} // cap 1: out has items
	startSig   chan struct{} // cap 1: startReq is set
	closing    chan struct{} // closed by closeWith
	readerDone chan struct{}
	writerDone chan struct{}
}

func newConn(g *Gateway, ws *websocket.Conn, id Identity, uid, token string, remote net.Addr) *conn {
	return &conn{
		g: g, ws: ws, uid: uid, admin: id.Admin, token: token, remote: remote,
		platform: id.Platform, id: g.connIDs.Add(1), since: time.Now(),
		pos:        map[string]uint64{},
		wake:       make(chan struct{}, 1),
		startSig:   make(chan struct{}, 1),
		closing:    make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// pendingLimit bounds the live messages held while a connection waits for its resume or
// replays; beyond it the client is too slow for the traffic of its conversations.
func (c *conn) pendingLimit() int { return max(1024, 4*c.g.opts.SendBufferFrames) }

// closeWith starts closing the connection: the writer sends a close frame with code and
// reason, then the socket is closed. Only the first call counts.
func (c *conn) closeWith(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

func (c *conn) closeLocked(code int, reason string) {
	if c.phase == phaseClosed {
		return
	}
	c.phase = phaseClosed
	c.closeCode, c.closeReason = code, reason
	c.pending, c.out = nil, nil
	close(c.closing)
	// A writer blocked on a client that does not read gives up within a second.
	_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
}

// verdict is what a message means for a connection's position in its conversation.
type verdict uint8

const (
	next verdict = iota // the next seq: write it
	dup                 // already written (replayed): drop it
	gap                 // seqs are missing before it: pull them first
)

func (c *conn) check(m *fsm.Message) verdict {
	p, known := c.pos[m.ConversationID]
	if !known {
		if !c.fromZero {
			return next
		}
		p = 0
	}
	switch {
	case m.Seq <= p:
		return dup
	case m.Seq > p+1:
		return gap
	}
	return next
}

// deliver is called by the dispatcher for every applied message of this connection's
// conversations, in apply order. It never blocks on the client.
func (c *conn) deliver(f *lazyFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := f.m
	switch c.phase {
	case phaseClosed:
	case phaseLive:
		switch c.check(m) {
		case dup:
		case gap:
			// Only a node that installed a snapshot skips messages in its apply stream;
			// the writer pulls what is missing.
			c.phase = phaseCatchUp
			c.pending = append(c.pending, m)
			c.pushLocked(outItem{catchUp: true})
		case next:
			c.pos[m.ConversationID] = m.Seq
			c.pushLocked(outItem{data: f.bytes(), msg: true})
		}
	default:
		if len(c.pending) >= c.pendingLimit() {
			c.closeLocked(CloseTooSlow, "too slow: live messages piled up while replaying")
			return
		}
		c.pending = append(c.pending, m)
	}
}

// push queues a frame for the writer (replies of the reader).
func (c *conn) push(it outItem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase != phaseClosed {
		c.pushLocked(it)
	}
}

func (c *conn) pushLocked(it outItem) {
	if len(c.out) >= c.g.opts.SendBufferFrames {
		c.closeLocked(CloseTooSlow, "too slow: send buffer full")
		return
	}
	c.out = append(c.out, it)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// requestStart records how delivery starts, once. It reports false when it had already
// started (a resume then comes too late).
func (c *conn) requestStart(r startReq) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return false
	}
	c.started = true
	c.startReq = r
	select {
	case c.startSig <- struct{}{}:
	default:
	}
	return true
}

// writeLoop is the writer goroutine.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	o := c.g.opts
	ping := time.NewTicker(o.PingInterval)
	defer ping.Stop()
	wait := time.NewTimer(o.ResumeWait)
	defer wait.Stop()
	waitC := wait.C
	for {
		select {
		case <-c.closing:
			c.shut()
			return
		case <-waitC:
			waitC = nil
			c.requestStart(startReq{})
		case <-c.startSig:
			waitC = nil
			c.begin()
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(o.WriteWait)); err != nil {
				c.closeWith(websocket.CloseAbnormalClosure, "ping failed")
			}
		case <-c.wake:
			c.flush()
		}
	}
}

// begin sets the starting positions and replays what a resume asked for.
func (c *conn) begin() {
	c.mu.Lock()
	if c.phase != phaseWaiting {
		c.mu.Unlock()
		return
	}
	req := c.startReq
	var todo []string
	if req.seqs != nil {
		c.fromZero = true
		for conv, s := range req.seqs {
			c.pos[conv] = s
		}
		// Replay every conversation of the user that has messages past what the client
		// said it has (0 for those it did not list). Listed conversations that are not
		// the user's are never pulled: the baseline only holds the user's own.
		for _, b := range c.baseline {
			if b.MaxSeq > c.pos[b.ConversationID] {
				todo = append(todo, b.ConversationID)
			}
		}
	} else {
		for _, b := range c.baseline {
			c.pos[b.ConversationID] = b.MaxSeq
		}
	}
	c.baseline = nil
	c.phase = phaseCatchUp
	c.mu.Unlock()
	c.catchUp(todo)
}

// flush writes the queued frames in order; a catch-up marker runs the catch-up there,
// after the frames queued before it.
func (c *conn) flush() {
	for {
		c.mu.Lock()
		items := c.out
		c.out = nil
		c.mu.Unlock()
		if len(items) == 0 {
			return
		}
		for _, it := range items {
			if it.catchUp {
				c.catchUp(nil)
				continue
			}
			if !c.write(it.data) {
				return
			}
			if it.msg {
				c.g.m.pushed.Inc()
			}
		}
	}
}

// catchUp pulls the conversations in todo past their positions, then drains the live
// messages that arrived meanwhile, dropping those already written and pulling again where
// one reveals a gap, until nothing is pending: then the connection is live. Messages
// applied while it runs are in pending (the connection registered before it started), so
// none is lost, and positions drop the ones the pull already wrote, so none is doubled.
func (c *conn) catchUp(todo []string) {
	for {
		for _, conv := range todo {
			if !c.replay(conv) {
				return
			}
		}
		c.mu.Lock()
		if c.phase != phaseCatchUp {
			c.mu.Unlock()
			return
		}
		if len(c.pending) == 0 {
			c.phase = phaseLive
			c.mu.Unlock()
			return
		}
		batch := c.pending
		c.pending = nil
		c.mu.Unlock()
		todo = todo[:0]
		for _, m := range batch {
			switch c.check(m) {
			case dup:
			case gap:
				if len(todo) == 0 || !contains(todo, m.ConversationID) {
					todo = append(todo, m.ConversationID)
				}
			case next:
				if contains(todo, m.ConversationID) {
					// An earlier message of this conversation needs a pull; the pull
					// brings this one too, in order.
					continue
				}
				c.pos[m.ConversationID] = m.Seq
				if !c.write(encodeMessage(m)) {
					return
				}
				c.g.m.pushed.Inc()
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// replayBatch is how many messages one pull reads while replaying.
const replayBatch = 256

// replay writes every stored message of conv after its position, in seq order.
func (c *conn) replay(conv string) bool {
	for {
		from := c.pos[conv] + 1
		msgs, err := c.g.deps.Store.PullMessages(conv, from, math.MaxUint64, replayBatch)
		if err != nil {
			c.g.log.Error("replay: pull messages", "conversationID", conv, "err", err)
			c.closeWith(CloseInternal, "cannot read messages: reconnect and resume")
			return false
		}
		// A replay is a pull by the user: the messages they deleted from their own view
		// (msg/delete_msgs) go out marked deleted, without content.
		var deleted []uint64
		if len(msgs) > 0 {
			if deleted, err = c.g.deps.Store.DeletedSeqs(c.uid, conv, msgs[0].Seq, msgs[len(msgs)-1].Seq); err != nil {
				c.g.log.Error("replay: read deleted seqs", "conversationID", conv, "err", err)
				c.closeWith(CloseInternal, "cannot read messages: reconnect and resume")
				return false
			}
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Seq != c.pos[conv]+1 && !c.goneBefore(conv, m.Seq) {
				// The store is gap-free; a hole means a bug, and skipping it silently
				// would break the contract. Seqs removed by message retention are gone,
				// not a hole.
				c.g.log.Error("replay: seq hole", "conversationID", conv, "want", c.pos[conv]+1, "got", m.Seq)
				c.closeWith(CloseInternal, "message store inconsistent: reconnect and resume")
				return false
			}
			frame := encodeMessage
			if len(deleted) > 0 && deleted[0] == m.Seq {
				deleted = deleted[1:]
				frame = func(m *fsm.Message) []byte { v := m.View(); v.Hide(); return encodeView(v) }
			}
			if !c.write(frame(m)) {
				return false
			}
			c.pos[conv] = m.Seq
			c.g.m.replayed.Inc()
		}
		if len(msgs) < replayBatch {
			return true
		}
	}
}

// write sends one text frame; on failure it closes the connection and reports false.
func (c *conn) write(data []byte) bool {
	select {
	case <-c.closing:
		return false
	default:
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.g.opts.WriteWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		c.closeWith(websocket.CloseAbnormalClosure, "write failed")
		return false
	}
	return true
}

// shut sends the close frame, gives the client a moment to answer it, and closes the
// socket so the reader returns.
func (c *conn) shut() {
	c.mu.Lock()
	code, reason := c.closeCode, c.closeReason
	c.mu.Unlock()
	c.g.m.closes.WithLabelValues(closeLabel(code)).Inc()
	if code != websocket.CloseAbnormalClosure && code != websocket.CloseNoStatusReceived {
		// A close reason is at most 123 bytes (RFC 6455 control frame limit).
		if len(reason) > 123 {
			reason = reason[:123]
		}
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
			time.Now().Add(time.Second))
		select {
		case <-c.readerDone:
		case <-time.After(time.Second):
		}
	}
	_ = c.ws.NetConn().Close()
}

func closeLabel(code int) string {
	switch code {
	case CloseGoingAway:
		return "going_away"
	case CloseInternal:
		return "internal"
	case CloseUserDeleted:
		return "user_deleted"
	case CloseTooSlow:
		return "too_slow"
	case CloseHeartbeat:
		return "heartbeat"
	case websocket.CloseMessageTooBig:
		return "frame_too_big"
	case websocket.CloseNormalClosure, websocket.CloseNoStatusReceived:
		return "client"
	}
	return "error"
}

// readLoop is the reader: it reads client frames until the connection fails or closes.
func (c *conn) readLoop() {
	defer close(c.readerDone)
	o := c.g.opts
	c.ws.SetReadLimit(int64(o.MaxFrameBytes))
	_ = c.ws.SetReadDeadline(time.Now().Add(o.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(o.PongWait))
	})
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(o.PongWait))
		if typ != websocket.TextMessage {
			c.push(outItem{data: errorFrame(nil, 1001, "frames are JSON text frames")})
			continue
		}
		c.handleFrame(data)
	}
}

func (c *conn) readFailed(err error) {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		c.closeWith(websocket.CloseNormalClosure, "")
	case errors.Is(err, websocket.ErrReadLimit):
		c.closeWith(websocket.CloseMessageTooBig, "frame larger than the limit")
	case errors.As(err, &ne) && ne.Timeout():
		c.closeWith(CloseHeartbeat, "no frame or pong within the heartbeat timeout")
	case strings.Contains(err.Error(), "use of closed network connection"):
		c.closeWith(websocket.CloseAbnormalClosure, "")
	default:
		c.closeWith(websocket.CloseAbnormalClosure, "")
	}
}

// handleFrame answers one client frame. Any first frame starts delivery: a resume with
// its positions, anything else live only.
func (c *conn) handleFrame(data []byte) {
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		c.requestStart(startReq{})
		c.push(outItem{data: errorFrame(nil, 1001, "a frame must be a JSON object with a type: "+err.Error())})
		return
	}
	if f.Type == "resume" {
		seqs := f.Seqs
		if seqs == nil {
			seqs = map[string]uint64{}
		}
		if !c.requestStart(startReq{seqs: seqs}) {
			c.push(outItem{data: errorFrame(f.ReqID, 1001, "resume is accepted only as the first frame, within the resume wait after connecting: reconnect to resume")})
		}
		return
	}
	c.requestStart(startReq{})
	switch f.Type {
	case "ping":
		c.push(outItem{data: pongFrame(f.ReqID)})
	case "send":
		c.push(outItem{data: c.forward("sendAck", f.ReqID, data)})
	case "pull":
		c.push(outItem{data: c.forward("pullResp", f.ReqID, data)})
	default:
		c.push(outItem{data: errorFrame(f.ReqID, 1001, "unknown frame type "+strconvQuote(f.Type)+": want resume, send, pull or ping")})
	}
}

// goneBefore reports whether every seq of conv before seq was removed by message
// retention: a replay that jumps there skips gone messages, not lost ones.
func (c *conn) goneBefore(conv string, seq uint64) bool {
	minSeq, err := c.g.deps.Store.MinSeq(conv)
	if err != nil {
		c.g.log.Error("replay: read min seq", "conversationID", conv, "err", err)
		return false
	}
	return seq > c.pos[conv] && seq <= minSeq
}
