package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/imnode/imnode/apiclient"
)

// LatencyStats is the latency phase: ack→delivery is from the HTTP answer of send_msg
// (the write is committed and applied on the leader) to the message frame arriving on a
// receiver connected to another node; send→delivery starts when the request is sent.
// A delivery that arrives before the ack counts as 0 in ack→delivery.
type LatencyStats struct {
	Rate          int     `json:"rate"`
	Seconds       float64 `json:"seconds"`
	Sent          int     `json:"sent"`
	Acked         int     `json:"acked"`
	SendErrors    int     `json:"sendErrors"`
	Skipped       int     `json:"skipped"` // not sent: every sender was busy (open loop)
	Delivered     int     `json:"delivered"`
	Lost          int     `json:"lost"` // acked but not delivered within the grace period
	Duplicates    int     `json:"duplicates"`
	AchievedRate  float64 `json:"achievedRate"`
	AckToDelivery Summary `json:"ackToDeliveryMs"`
	SendToDeliver Summary `json:"sendToDeliveryMs"`
	SendToAck     Summary `json:"sendToAckMs"`
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	q := func(p float64) float64 {
		i := int(p*float64(len(d))+0.5) - 1
		return ms(d[min(max(i, 0), len(d)-1)])
	}
	return Summary{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(d[len(d)-1])}
}

// track is one message's times.
type track struct {
	sent, acked, delivered time.Time
	deliveries             int
}

type tracker struct {
	mu sync.Mutex
	m  map[string]*track // msgID → times
}

func (t *tracker) get(id string) *track {
	tr := t.m[id]
	if tr == nil {
		tr = &track{}
		t.m[id] = tr
	}
	return tr
}

func runLatency(ctx context.Context, cfg config, log io.Writer) (*LatencyStats, error) {
	n := len(cfg.nodes)
	send, err := registerUsers(ctx, cfg, cfg.prefix+"s", cfg.pairs)
	if err != nil {
		return nil, err
	}
	recv, err := registerUsers(ctx, cfg, cfg.prefix+"r", cfg.pairs)
	if err != nil {
		return nil, err
	}
	tr := &tracker{m: map[string]*track{}}
	// Receivers connect to the node after their sender's, so every delivery crosses nodes.
	var conns []*websocket.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	var ready sync.WaitGroup
	for i := 0; i < cfg.pairs; i++ {
		ws, _, err := dialer(0).DialContext(ctx, "ws://"+cfg.nodes[(i+1)%n]+"/ws?token="+recv[i], nil)
		if err != nil {
			return nil, fmt.Errorf("receiver %d: %w", i, err)
		}
		conns = append(conns, ws)
		ready.Add(1)
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
		go func() {
			first := true
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					if first {
						ready.Done()
					}
					return
				}
				now := time.Now()
				var f struct {
					Type  string `json:"type"`
					MsgID string `json:"msgID"`
				}
				if json.Unmarshal(b, &f) != nil {
					continue
				}
				if f.Type == "pong" && first {
					first = false
					ready.Done()
					continue
				}
				if f.Type != "msg" {
					continue
				}
				tr.mu.Lock()
				t := tr.get(f.MsgID)
				t.deliveries++
				if t.deliveries == 1 {
					t.delivered = now
				}
				tr.mu.Unlock()
			}
		}()
	}
	ready.Wait()

	clients := make([]*apiclient.Client, n)
	for i := range clients {
		clients[i] = apiclient.New(cfg.nodes[i])
	}
	var sent, acked, sendErrs, skipped atomic.Int64
	workers := min(1024, max(32, cfg.rate/4))
	type job struct{ i, seq int }
	// Room for a second of sends, so a scheduler hiccup is caught up rather than skipped.
	jobs := make(chan job, max(workers, cfg.rate))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				p := j.i % cfg.pairs
				c := clients[p%n].WithToken(send[p])
				body := map[string]any{"operationID": fmt.Sprintf("%s-%d", cfg.prefix, j.seq),
					"sendID": fmt.Sprintf("%ss%d", cfg.prefix, p), "recvID": fmt.Sprintf("%sr%d", cfg.prefix, p),
					"sessionType": 1, "contentType": 101, "content": map[string]string{"text": "imws"}}
				start := time.Now()
				sent.Add(1)
				r, err := c.Post("msg/send_msg", body)
				now := time.Now()
				if err != nil || r.ErrCode != 0 {
					if sendErrs.Add(1) == 1 {
						if err == nil {
							err = fmt.Errorf("errCode %d %s", r.ErrCode, r.ErrMsg)
						}
						fmt.Fprintln(log, "  first send error:", err)
					}
					continue
				}
				var a struct {
					MsgID string `json:"msgID"`
				}
				if r.Decode(&a) != nil || a.MsgID == "" {
					sendErrs.Add(1)
					continue
				}
				acked.Add(1)
				tr.mu.Lock()
				t := tr.get(a.MsgID)
				t.sent, t.acked = start, now
				tr.mu.Unlock()
			}
		}()
	}
	// Open loop: one message every 1/rate, whether or not earlier ones were answered.
	begin := time.Now()
	interval := time.Second / time.Duration(cfg.rate)
	end := begin.Add(cfg.duration)
	seq := 0
	for next := begin; next.Before(end) && ctx.Err() == nil; next = next.Add(interval) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		select {
		case jobs <- job{i: seq, seq: seq}:
		default:
			skipped.Add(1)
		}
		seq++
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(begin)
	// Grace for deliveries still in flight.
	graceEnd := time.Now().Add(5 * time.Second)
	for time.Now().Before(graceEnd) {
		tr.mu.Lock()
		missing := 0
		for _, t := range tr.m {
			if !t.acked.IsZero() && t.deliveries == 0 {
				missing++
			}
		}
		tr.mu.Unlock()
		if missing == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := &LatencyStats{Rate: cfg.rate, Seconds: elapsed.Seconds(), Sent: int(sent.Load()),
		Acked: int(acked.Load()), SendErrors: int(sendErrs.Load()), Skipped: int(skipped.Load())}
	var a2d, s2d, s2a []time.Duration
	tr.mu.Lock()
	for _, t := range tr.m {
		if t.acked.IsZero() {
			continue
		}
		s2a = append(s2a, t.acked.Sub(t.sent))
		if t.deliveries == 0 {
			st.Lost++
			continue
		}
		st.Delivered++
		st.Duplicates += t.deliveries - 1
		s2d = append(s2d, t.delivered.Sub(t.sent))
		a2d = append(a2d, max(0, t.delivered.Sub(t.acked)))
	}
	tr.mu.Unlock()
	st.AchievedRate = float64(st.Acked) / elapsed.Seconds()
	st.AckToDelivery, st.SendToDeliver, st.SendToAck = summarize(a2d), summarize(s2d), summarize(s2a)
	if st.Lost > 0 || st.Duplicates > 0 {
		return st, fmt.Errorf("%d acknowledged messages not delivered, %d duplicates", st.Lost, st.Duplicates)
	}
	return st, nil
}

func printLatency(w io.Writer, s *LatencyStats) {
	fmt.Fprintf(w, "latency: %d sent, %d acked (%.0f msg/s), %d send errors, %d skipped, %d delivered, %d lost, %d duplicates\n",
		s.Sent, s.Acked, s.AchievedRate, s.SendErrors, s.Skipped, s.Delivered, s.Lost, s.Duplicates)
	p := func(name string, x Summary) {
		fmt.Fprintf(w, "  %-17s p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  max %7.2f ms\n", name, x.P50, x.P90, x.P99, x.Max)
	}
	p("ack -> delivery", s.AckToDelivery)
	p("send -> delivery", s.SendToDeliver)
	p("send -> ack", s.SendToAck)
}

func openStatus() (*os.File, error) { return os.Open("/proc/self/status") }
