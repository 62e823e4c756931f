package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/imnode/imnode/fsm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Store is what the gateway reads from the node's state machine (*fsm.FSM implements it).
// Every method reads local, already applied state.
type Store interface {
	NewestSeqs(uid string) ([]fsm.ConversationSeq, error)
	PullMessages(conversationID string, begin, end uint64, limit int) ([]fsm.Message, error)
	// DeletedSeqs lists the seqs in [begin, end] uid deleted from their own view.
	DeletedSeqs(uid, conversationID string, begin, end uint64) ([]uint64, error)
	Group(groupID string) (fsm.Group, error)
	GroupMembers(groupID string) ([]fsm.GroupMember, error)
	IsGroupMember(groupID, uid string) (bool, error)
	// MinSeq is the lowest seq of a conversation that message retention has not removed
	// (0: none removed); replay skips the seqs below it instead of taking them for a hole.
	MinSeq(conversationID string) (uint64, error)
}

// Identity is whom a verified token speaks for.
type Identity struct {
	UID   string
	Admin bool
	// Platform is the token's platform (1 iOS ... 7 Linux), shown by presence.
	Platform int
}

// AuthError is a failed token check as the client should see it: the API's errCode and
// errMsg. Verify functions return it so the handshake answers the same code as the API.
type AuthError struct {
	Code int
	Msg  string
}

func (e *AuthError) Error() string { return fmt.Sprintf("errCode %d: %s", e.Code, e.Msg) }

// Deps are the gateway's collaborators, known only once the node and its API exist.
type Deps struct {
	Store Store
	// Verify checks a token exactly like the API does (signature, expiry, user still
	// registered). Errors that are *AuthError give the handshake's errCode.
	Verify func(token string) (Identity, error)
	// API is the full HTTP API handler. Request frames ("send", "pull") run through it as
	// in-memory requests carrying the connection's token, so every validation,
	// permission and idempotency rule of the HTTP routes applies unchanged.
	API fasthttp.RequestHandler
	// Ready reports whether the node belongs to a cluster with a known leader and has
	// caught up; nil means always. See Options.NotReadyGrace.
	Ready func() bool
}

// Options configures a Gateway. Zero values take the defaults named on each field.
type Options struct {
	Logger *slog.Logger
	// MaxConnections caps open WebSocket connections on this node (0: 50,000; negative:
	// none); a handshake beyond it is answered HTTP 503.
	MaxConnections int
	// MaxFrameBytes caps a client frame (default 64 KiB); a larger one closes the
	// connection with code 1009.
	MaxFrameBytes int
	// SendBufferFrames bounds the frames queued for one connection (default 256). A
	// client that lets it fill is closed with CloseTooSlow instead of slowing the others
	// or growing memory.
	SendBufferFrames int
	// PingInterval is how often the server pings (default 25 s); PongWait is how long a
	// connection may stay silent (no frame, no pong) before it is taken for dead (default
	// 60 s).
	PingInterval time.Duration
	PongWait     time.Duration
	// ResumeWait is how long a new connection waits for a resume frame before it starts
	// live delivery on its own (default 500 ms). Any other first frame starts it at once.
	ResumeWait time.Duration
	// WriteWait bounds one write to a client (default 10 s).
	WriteWait time.Duration
	// NotReadyGrace is how long the node may be not ready (Deps.Ready false) before its
	// connections are closed with CloseGoingAway so their clients move to a node that is
	// (default 15 s). New connections are refused while it is not ready.
	NotReadyGrace time.Duration
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 50000
	}
	setDefault(&o.MaxFrameBytes, 64<<10)
	setDefault(&o.SendBufferFrames, 256)
	setDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setDur(&o.PingInterval, 25*time.Second)
	setDur(&o.PongWait, 60*time.Second)
	setDur(&o.ResumeWait, 500*time.Millisecond)
	setDur(&o.WriteWait, 10*time.Second)
	setDur(&o.NotReadyGrace, 15*time.Second)
}

// Close codes the gateway sends (besides 1009 for an oversized frame, sent by the
// WebSocket library). Codes 4000-4999 are the application's range of RFC 6455.
const (
	// CloseGoingAway: the node shuts down, leaves the cluster or lost contact with it;
	// reconnect to another node and resume.
	CloseGoingAway = websocket.CloseGoingAway
	// CloseInternal: the node could not read its own state; reconnect and resume.
	CloseInternal = websocket.CloseInternalServerErr
	// CloseUserDeleted: the connection's user was deleted; its tokens are dead.
	CloseUserDeleted = 4001
	// CloseTooSlow: the client did not read fast enough and its send buffer filled;
	// reconnect and resume.
	CloseTooSlow = 4002
	// CloseHeartbeat: nothing (no frame, no pong) came from the client within PongWait.
	CloseHeartbeat = 4003
)

// Gateway is the WebSocket gateway of one node: it keeps the node's client connections,
// pushes every message the node's FSM applies to the connections of its conversations,
// and answers request frames through the HTTP API.
type Gateway struct {
	opts Options
	log  *slog.Logger
	deps Deps
	up   websocket.FastHTTPUpgrader

	// mu guards byUID; the dispatcher reads it, (un)registration writes it.
	mu    sync.RWMutex
	byUID map[string]map[*conn]struct{}
	// online holds byUID's keys (uid -> struct{}), written with it under mu and read
	// without it by Awaits, which the FSM calls under its transaction lock: taking mu
	// there would order mu after that lock, while the dispatcher reads the store under mu.
	online sync.Map

	// nconns counts registered connections, reserved counts handshakes in progress too
	// (for MaxConnections).
	nconns   atomic.Int64
	reserved atomic.Int64
	closing  atomic.Bool
	// cutOff is set while the node has been not ready longer than NotReadyGrace.
	cutOff atomic.Bool

	// connIDs numbers connections (presence shows the number).
	connIDs atomic.Uint64

	queue   chan event
	stop    chan struct{}
	stopped sync.WaitGroup
	started atomic.Bool
	conns   sync.WaitGroup

	m metrics
}

// event is one applied batch's effects, in apply order.
type event struct {
	msgs    []fsm.Message
	deleted []string
	notices []fsm.Notice
}

// queueBatches bounds the applied batches waiting for the dispatcher. When it is full,
// OnCommit blocks the FSM's apply loop: back-pressure instead of unbounded memory. The
// dispatcher never waits on a client, so it is only full when routing itself (group
// membership reads) is slower than applying.
const queueBatches = 4096

// New returns a gateway that is not started: OnCommit and OnUsersDeleted may be wired
// into the FSM before the FSM exists, and they do nothing until Start.
func New(opts Options) *Gateway {
	opts.defaults()
	g := &Gateway{
		opts:  opts,
		log:   opts.Logger.With("component", "gateway"),
		byUID: map[string]map[*conn]struct{}{},
		queue: make(chan event, queueBatches),
		stop:  make(chan struct{}),
		m:     newMetrics(),
	}
	g.up = websocket.FastHTTPUpgrader{
		HandshakeTimeout: 10 * time.Second,
		// A small read buffer and pooled write buffers keep an idle connection cheap;
		// neither limits the frame size.
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		// Clients authenticate with an explicit token in the URL, never with cookies,
		// so a page of another origin cannot ride on a user's session: any origin may
		// connect (apps serve their web clients from their own origins).
		CheckOrigin: func(*fasthttp.RequestCtx) bool { return true },
	}
	return g
}

// Start begins routing applied messages to connections. It must be called once, before
// the API serves /ws.
func (g *Gateway) Start(d Deps) {
	if d.Store == nil || d.Verify == nil || d.API == nil {
		panic("gateway: Start needs Store, Verify and API")
	}
	g.deps = d
	g.started.Store(true)
	g.stopped.Add(1)
	go g.dispatchLoop()
	if d.Ready != nil {
		g.stopped.Add(1)
		go g.watchReady()
	}
}

// OnCommit is the FSM's fsm.Options.OnCommit: it hands an applied batch's messages to the
// dispatcher. It returns at once unless the dispatcher is queueBatches behind.
func (g *Gateway) OnCommit(msgs []fsm.Message) {
	g.enqueue(event{msgs: msgs})
}

// OnUsersDeleted is the FSM's fsm.Options.OnUsersDeleted: the connections of those users
// are closed with CloseUserDeleted.
func (g *Gateway) OnUsersDeleted(uids []string) {
	g.enqueue(event{deleted: uids})
}

// OnNotices is the FSM's fsm.Options.OnNotices: each notice goes, as a frame of its type,
// to every connection of its uids (see the README's frame table).
func (g *Gateway) OnNotices(notices []fsm.Notice) {
	g.enqueue(event{notices: notices})
}

// Listening reports whether the gateway would route a batch now: it is started and holds
// a connection.
func (g *Gateway) Listening() bool { return g.started.Load() && g.nconns.Load() > 0 }

// Awaits is the FSM's fsm.Options.Awaits: whether a user connected to this node would
// receive one of msgs or notices now. The FSM commits a group that nobody here waits for
// at leisure. A group message counts as awaited whenever anyone is connected: its members
// are in the store, which Awaits may not read under the FSM's lock.
func (g *Gateway) Awaits(msgs []fsm.Message, notices []fsm.Notice) bool {
	if !g.Listening() {
		return false
	}
	for i := range msgs {
		m := &msgs[i]
		if m.SessionType != fsm.SessionSingle || g.isOnline(m.SendID) || g.isOnline(m.RecvID) {
			return true
		}
	}
	for i := range notices {
		for _, uid := range notices[i].UIDs {
			if g.isOnline(uid) {
				return true
			}
		}
	}
	return false
}

func (g *Gateway) isOnline(uid string) bool {
	_, ok := g.online.Load(uid)
	return ok
}

func (g *Gateway) enqueue(ev event) {
	// With no connection nobody can miss the batch: a connection registers before it
	// reads its starting point, so whatever was applied before then is in that read.
	if !g.Listening() {
		return
	}
	select {
	case g.queue <- ev:
	case <-g.stop:
	}
}

// Connections is the number of open WebSocket connections.
func (g *Gateway) Connections() int { return int(g.nconns.Load()) }

// Close closes every connection with code and reason (CloseGoingAway and "node shutting
// down" when leaving), refuses new ones, and waits until they are gone or ctx ends.
func (g *Gateway) Close(ctx context.Context, code int, reason string) error {
	if g.closing.Swap(true) {
		return nil
	}
	g.closeAll(code, reason)
	done := make(chan struct{})
	go func() { g.conns.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("gateway close: %d connections still open: %w", g.nconns.Load(), ctx.Err())
	}
	close(g.stop)
	g.stopped.Wait()
	return err
}

func (g *Gateway) closeAll(code int, reason string) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, set := range g.byUID {
		for c := range set {
			c.closeWith(code, reason)
		}
	}
}

func (g *Gateway) register(c *conn) {
	g.mu.Lock()
	set := g.byUID[c.uid]
	if set == nil {
		set = map[*conn]struct{}{}
		g.byUID[c.uid] = set
		g.online.Store(c.uid, struct{}{})
	}
	set[c] = struct{}{}
	g.nconns.Add(1)
	g.mu.Unlock()
	g.m.conns.Inc()
}

func (g *Gateway) unregister(c *conn) {
	g.mu.Lock()
	if set := g.byUID[c.uid]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(g.byUID, c.uid)
			g.online.Delete(c.uid)
		}
	}
	g.nconns.Add(-1)
	g.mu.Unlock()
	g.m.conns.Dec()
}

// dispatchLoop routes applied batches in apply order, so every connection sees each
// conversation's messages in seq order.
func (g *Gateway) dispatchLoop() {
	defer g.stopped.Done()
	for {
		select {
		case ev := <-g.queue:
			g.dispatch(ev)
		case <-g.stop:
			return
		}
	}
}

func (g *Gateway) dispatch(ev event) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, uid := range ev.deleted {
		for c := range g.byUID[uid] {
			c.closeWith(CloseUserDeleted, "user deleted")
		}
	}
	for i := range ev.msgs {
		m := &ev.msgs[i]
		f := &lazyFrame{m: m}
		switch m.SessionType {
		case fsm.SessionSingle:
			g.deliverUID(m.SendID, f)
			if m.RecvID != m.SendID {
				g.deliverUID(m.RecvID, f)
			}
		case fsm.SessionGroup:
			g.deliverGroup(m.RecvID, f)
		}
	}
	for i := range ev.notices {
		nt := &ev.notices[i]
		var b []byte
		for _, uid := range nt.UIDs {
			for c := range g.byUID[uid] {
				if b == nil {
					b = encodeNotice(nt)
				}
				c.push(outItem{data: b})
			}
		}
	}
}

func (g *Gateway) deliverUID(uid string, f *lazyFrame) {
	for c := range g.byUID[uid] {
		c.deliver(f)
	}
}

// deliverGroup pushes a group message to the members connected to this node. It walks
// whichever set is smaller: this node's connected uids (one membership lookup each) or
// the group's members (one scan of the group). A node with a few connections never scans
// a huge group, and a node with many connections never probes them all for a small group.
// Membership is read after the batch was applied, so a member kicked in the same or a
// later batch may not get it (it could not pull it either).
func (g *Gateway) deliverGroup(groupID string, f *lazyFrame) {
	st := g.deps.Store
	grp, err := st.Group(groupID)
	if err != nil {
		g.log.Warn("group message: read group", "groupID", groupID, "err", err)
		return
	}
	if len(g.byUID) <= grp.MemberCount {
		for uid, set := range g.byUID {
			in, err := st.IsGroupMember(groupID, uid)
			if err != nil {
				g.log.Warn("group message: read membership", "groupID", groupID, "err", err)
				return
			}
			if in {
				for c := range set {
					c.deliver(f)
				}
			}
		}
		return
	}
	members, err := st.GroupMembers(groupID)
	if err != nil {
		g.log.Warn("group message: read members", "groupID", groupID, "err", err)
		return
	}
	for _, mem := range members {
		g.deliverUID(mem.UID, f)
	}
}

// watchReady closes the connections of a node that has been cut off from the cluster
// for NotReadyGrace: it applies nothing, so its clients would wait for nothing while the
// other nodes have their messages.
func (g *Gateway) watchReady() {
	defer g.stopped.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var since time.Time
	for {
		select {
		case <-g.stop:
			return
		case now := <-t.C:
			if g.deps.Ready() {
				since = time.Time{}
				g.cutOff.Store(false)
				continue
			}
			if since.IsZero() {
				since = now
			}
			if now.Sub(since) >= g.opts.NotReadyGrace {
				if !g.cutOff.Swap(true) {
					g.log.Warn("node not ready: closing client connections", "for", now.Sub(since).String())
				}
				g.closeAll(CloseGoingAway, "node lost contact with the cluster: reconnect to another node")
			}
		}
	}
}

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	conns    prometheus.Gauge
	pushed   prometheus.Counter
	replayed prometheus.Counter
	closes   *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

func newMetrics() metrics {
	return metrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imnode_ws_connections", Help: "Open WebSocket client connections."}),
		pushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imnode_ws_messages_pushed_total", Help: "Message frames written to clients live."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imnode_ws_messages_replayed_total", Help: "Message frames written to clients by resume or gap filling."}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imnode_ws_closes_total", Help: "Connections closed, by close code."}, []string{"code"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imnode_ws_refused_total", Help: "Handshakes refused, by reason."}, []string{"reason"}),
	}
}

// Register adds the gateway's metrics to reg.
func (g *Gateway) Register(reg prometheus.Registerer) {
	reg.MustRegister(g.m.conns, g.m.pushed, g.m.replayed, g.m.closes, g.m.refused)
}
