package main

import (
	"bufio"
	"context"
	"fmt"
	"github.com/imnode/imnode/gateway"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/imnode/imnode/apiclient"
)

// Result is what imws prints as JSON.
type Result struct {
	Nodes   []string      `json:"nodes"`
	Idle    *IdleResult   `json:"idle,omitempty"`
	Latency *LatencyStats `json:"latency,omitempty"`
}

// IdleResult is the idle-connection phase.
type IdleResult struct {
	Wanted        int          `json:"wanted"`
	Connected     int          `json:"connected"`
	Failed        int          `json:"failed"`
	FirstError    string       `json:"firstError,omitempty"`
	ConnectSecs   float64      `json:"connectSeconds"`
	PerNode       []NodeMemory `json:"perNode"`
	ClientRSSDiff int64        `json:"clientRSSBytesDelta"`
}

// NodeMemory is one node's connections and resident memory before and after.
type NodeMemory struct {
	Node           string  `json:"node"`
	Connections    int     `json:"connections"`
	RSSBefore      int64   `json:"rssBytesBefore"`
	RSSAfter       int64   `json:"rssBytesAfter"`
	BytesPerConn   float64 `json:"bytesPerConnection"`
	GaugeConnected float64 `json:"imnodeWSConnections"`
}

func run(ctx context.Context, cfg config, log io.Writer) (*Result, error) {
	need := uint64(cfg.conns + 64)
	if cfg.rate > 0 {
		need += uint64(2 * cfg.pairs)
	}
	if lim, err := gateway.RaiseFileLimit(need); err != nil || lim < need {
		fmt.Fprintf(log, "warning: open-file limit %d is below the %d this run needs (%v)\n", lim, need, err)
	}
	res := &Result{Nodes: cfg.nodes}
	var idle *idleSet
	if cfg.conns > 0 {
		fmt.Fprintf(log, "registering %d users...\n", cfg.users)
		toks, err := registerUsers(ctx, cfg, cfg.prefix+"i", cfg.users)
		if err != nil {
			return res, err
		}
		before := readNodes(cfg.nodes)
		cliBefore := selfRSS()
		fmt.Fprintf(log, "opening %d idle connections over %d nodes...\n", cfg.conns, len(cfg.nodes))
		start := time.Now()
		idle = openIdle(ctx, cfg, toks, log)
		defer idle.closeAll()
		r := &IdleResult{Wanted: cfg.conns, Connected: int(idle.ok.Load()), Failed: int(idle.failed.Load()),
			FirstError: idle.firstError(), ConnectSecs: time.Since(start).Seconds()}
		sleepCtx(ctx, cfg.hold)
		after := readNodes(cfg.nodes)
		r.ClientRSSDiff = selfRSS() - cliBefore
		for i, n := range cfg.nodes {
			nm := NodeMemory{Node: n, Connections: int(idle.perNode[i].Load()), RSSBefore: before[i].rss,
				RSSAfter: after[i].rss, GaugeConnected: after[i].conns}
			if nm.Connections > 0 {
				nm.BytesPerConn = float64(nm.RSSAfter-nm.RSSBefore) / float64(nm.Connections)
			}
			r.PerNode = append(r.PerNode, nm)
		}
		res.Idle = r
		printIdle(log, r)
	}
	if cfg.rate > 0 {
		fmt.Fprintf(log, "latency: %d msg/s for %v over %d pairs...\n", cfg.rate, cfg.duration, cfg.pairs)
		st, err := runLatency(ctx, cfg, log)
		res.Latency = st
		if err != nil {
			return res, err
		}
		printLatency(log, st)
	}
	return res, nil
}

// registerUsers registers n users (prefix + index) through the nodes in turn and returns
// their tokens; users left from an earlier run with the same prefix get a new token.
func registerUsers(ctx context.Context, cfg config, prefix string, n int) ([]string, error) {
	toks := make([]string, n)
	var firstErr error
	var mu sync.Mutex
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c := apiclient.New(cfg.nodes[i%len(cfg.nodes)])
				tok, err := registerOne(c, cfg.secret, fmt.Sprintf("%s%d", prefix, i))
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				toks[i] = tok
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return toks, ctx.Err()
}

func registerOne(c *apiclient.Client, secret, uid string) (string, error) {
	for attempt := 0; ; attempt++ {
		r, err := c.Post("auth/user_register", map[string]any{"secret": secret, "platform": 1, "uid": uid, "name": uid})
		if err == nil && r.ErrCode == 1102 {
			return c.TokenFor(secret, uid)
		}
		if err == nil && r.ErrCode == 0 {
			var d struct {
				Token string `json:"token"`
			}
			if err := r.DecodeData(&d); err != nil {
				return "", err
			}
			return d.Token, nil
		}
		if attempt == 20 {
			if err == nil {
				err = fmt.Errorf("errCode %d %s", r.ErrCode, r.ErrMsg)
			}
			return "", fmt.Errorf("register %s: %w", uid, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// idleSet is the open idle connections.
type idleSet struct {
	mu      sync.Mutex
	conns   []*websocket.Conn
	ok      atomic.Int64
	failed  atomic.Int64
	errMsg  string
	perNode []atomic.Int64
}

func (s *idleSet) firstError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errMsg
}

func (s *idleSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}

// dialer returns a WebSocket dialer whose connections to loopback addresses come from
// 127.0.0.<src>: one address has only ~28,000 ephemeral ports.
func dialer(src int) *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: 15 * time.Second,
		ReadBufferSize:   512,
		WriteBufferSize:  512,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: 10 * time.Second}
			if host, _, err := net.SplitHostPort(addr); err == nil {
				if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && ip.To4() != nil && src > 0 {
					d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+src))}
				}
			}
			return d.DialContext(ctx, network, addr)
		},
	}
}

func openIdle(ctx context.Context, cfg config, toks []string, log io.Writer) *idleSet {
	s := &idleSet{perNode: make([]atomic.Int64, len(cfg.nodes))}
	dialers := make([]*websocket.Dialer, cfg.sourceIPs)
	for i := range dialers {
		dialers[i] = dialer(i)
	}
	perIP := (cfg.conns + cfg.sourceIPs - 1) / cfg.sourceIPs
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < cfg.dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				node := i % len(cfg.nodes)
				url := "ws://" + cfg.nodes[node] + "/ws?token=" + toks[i%len(toks)]
				ws, resp, err := dialers[i/perIP].DialContext(ctx, url, nil)
				if err != nil && resp != nil {
					err = fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
				}
				if err != nil {
					if s.failed.Add(1) == 1 {
						s.mu.Lock()
						s.errMsg = err.Error()
						s.mu.Unlock()
					}
					continue
				}
				// Live only, at once; then just read (the library answers pings).
				_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
				go func() {
					for {
						if _, _, err := ws.ReadMessage(); err != nil {
							return
						}
					}
				}()
				s.mu.Lock()
				s.conns = append(s.conns, ws)
				s.mu.Unlock()
				s.perNode[node].Add(1)
				if n := s.ok.Add(1); n%5000 == 0 {
					fmt.Fprintf(log, "  %d connected\n", n)
				}
			}
		}()
	}
	for i := 0; i < cfg.conns && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return s
}

// nodeReading is what /metrics says about a node.
type nodeReading struct {
	rss   int64
	conns float64
}

func readNodes(nodes []string) []nodeReading {
	out := make([]nodeReading, len(nodes))
	for i, n := range nodes {
		c := apiclient.New(n)
		r, err := c.Get("metrics")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(r.Raw), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				continue
			}
			switch f[0] {
			case "process_resident_memory_bytes":
				out[i].rss = int64(v)
			case "imnode_ws_connections":
				out[i].conns = v
			}
		}
	}
	return out
}

// selfRSS is this process's resident memory (Linux), 0 elsewhere.
func selfRSS() int64 {
	f, err := openStatus()
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func printIdle(w io.Writer, r *IdleResult) {
	fmt.Fprintf(w, "idle connections: %d of %d connected in %.1f s (%d failed%s)\n",
		r.Connected, r.Wanted, r.ConnectSecs, r.Failed, errSuffix(r.FirstError))
	for _, n := range r.PerNode {
		fmt.Fprintf(w, "  %s: %d connections (gauge %.0f), RSS %.1f -> %.1f MiB, %.1f KiB per connection\n",
			n.Node, n.Connections, n.GaugeConnected, float64(n.RSSBefore)/(1<<20), float64(n.RSSAfter)/(1<<20), n.BytesPerConn/1024)
	}
	if r.Connected > 0 {
		fmt.Fprintf(w, "  client side: %.1f KiB per connection (imws, %d goroutines)\n",
			float64(r.ClientRSSDiff)/float64(r.Connected)/1024, runtime.NumGoroutine())
	}
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ", first error: " + s
}
