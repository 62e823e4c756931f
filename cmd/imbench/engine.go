package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// env is what a workload runs with: the options of this run, the fixture, the admin token.
type env struct {
	ctx     context.Context
	o       *options
	f       *fixture
	token   string
	wl      *workload
	dial    fasthttp.DialFunc // nil: TCP; tests use an in-memory listener
	progOut io.Writer         // progress lines; nil: none
}

// recorder collects the outcome of every measured operation. It is shared by all workers:
// histograms are atomic, errors (rare) go under a mutex.
type recorder struct {
	all   *Histogram
	kinds [numKinds]*Histogram
	nodes []*Histogram

	okOps    atomic.Int64
	errOps   atomic.Int64
	nodeErrs []atomic.Int64
	kindErrs [numKinds]atomic.Int64

	mu         sync.Mutex
	codes      map[string]int64 // errCode → count
	transport  map[string]int64 // class → count
	errSamples map[string]string
}

func newRecorder(nodes int) *recorder {
	r := &recorder{all: NewHistogram(), nodes: make([]*Histogram, nodes), nodeErrs: make([]atomic.Int64, nodes),
		codes: map[string]int64{}, transport: map[string]int64{}, errSamples: map[string]string{}}
	for i := range r.kinds {
		r.kinds[i] = NewHistogram()
	}
	for i := range r.nodes {
		r.nodes[i] = NewHistogram()
	}
	return r
}

// ok records a successful operation of kind k on node n.
func (r *recorder) ok(k opKind, n int, d time.Duration) {
	r.all.Record(d)
	r.kinds[k].Record(d)
	r.nodes[n].Record(d)
	r.okOps.Add(1)
}

// fail records a failed operation: an errCode (code != "") or a transport error class.
func (r *recorder) fail(k opKind, n int, code, class, sample string) {
	r.errOps.Add(1)
	r.nodeErrs[n].Add(1)
	r.kindErrs[k].Add(1)
	r.mu.Lock()
	key := "errCode " + code
	if code != "" {
		r.codes[code]++
	} else {
		r.transport[class]++
		key = class
	}
	if _, ok := r.errSamples[key]; !ok && sample != "" {
		r.errSamples[key] = sample
	}
	r.mu.Unlock()
}

// classify names a transport error for the report.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no free connections"
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return "connection closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

var errCodeKey = []byte(`"errCode":`)

// parseErrCode finds the envelope's errCode without decoding the body: the hot loop
// needs only that number. ok is false when the body has none.
func parseErrCode(body []byte) (code int, ok bool) {
	i := bytes.Index(body, errCodeKey)
	if i < 0 {
		return 0, false
	}
	b := body[i+len(errCodeKey):]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	n := 0
	digits := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if digits == 0 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

var msgIDKey = []byte(`"msgID":"`)

// runHTTP runs a request/response workload: o.concurrency workers in a closed loop, each
// sending its next request as soon as the previous one is answered, to the nodes in turn,
// until the duration has passed or o.maxOps operations were measured.
func runHTTP(e *env) (*Result, error) {
	o := e.o
	hcs := make([]*fasthttp.HostClient, len(o.nodes))
	uris := make([][numKinds]string, len(o.nodes))
	for i, n := range o.nodes {
		hcs[i] = &fasthttp.HostClient{
			Addr:                          n,
			MaxConns:                      o.concurrency + 8,
			MaxIdleConnDuration:           30 * time.Second,
			ReadTimeout:                   o.timeout,
			WriteTimeout:                  o.timeout,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			Dial:                          e.dial,
			IsTLS:                         o.tlsConf != nil,
			TLSConfig:                     o.tlsConf,
		}
		for k := range kindPaths {
			uris[i][k] = o.scheme() + n + kindPaths[k]
		}
	}
	targets, err := targetNodes(o, e.token)
	if err != nil {
		return nil, err
	}
	rec := newRecorder(len(o.nodes))
	var (
		stop     atomic.Bool
		issued   atomic.Int64
		measured atomic.Bool
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	begin := time.Now()
	measureStart := begin.Add(o.warmup)
	if o.warmup <= 0 {
		measured.Store(true)
	}
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			gen := e.wl.newGen(e.f, o, w)
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var buf []byte
			for j := w; !stop.Load(); j++ {
				m := measured.Load()
				if m && o.maxOps > 0 && issued.Add(1) > o.maxOps {
					stop.Store(true)
					return
				}
				var kind opKind
				kind, buf = gen.next(buf)
				n := targets[j%len(targets)]
				req.SetRequestURI(uris[n][kind])
				if o.newConns {
					req.SetConnectionClose()
				}
				req.Header.SetMethod(fasthttp.MethodPost)
				req.Header.SetContentType("application/json")
				req.Header.Set("token", e.token)
				if o.stale {
					req.Header.Set("X-Consistency", "stale")
				}
				req.SetBodyRaw(buf)
				t0 := time.Now()
				err := hcs[n].Do(req, resp)
				d := time.Since(t0)
				if !m {
					continue
				}
				if err != nil {
					rec.fail(kind, n, "", classify(err), err.Error())
					// A dead node refuses at once; do not spin on it and starve the rest.
					time.Sleep(5 * time.Millisecond)
					continue
				}
				body := resp.Body()
				code, ok := parseErrCode(body)
				switch {
				case !ok:
					rec.fail(kind, n, "", fmt.Sprintf("HTTP %d without envelope", resp.StatusCode()), string(body[:min(len(body), 200)]))
				case code != 0:
					rec.fail(kind, n, fmt.Sprint(code), "", string(body[:min(len(body), 200)]))
				case kind.isWrite() && !bytes.Contains(body, msgIDKey):
					rec.fail(kind, n, "", "send answered without msgID", string(body[:min(len(body), 200)]))
				default:
					rec.ok(kind, n, d)
				}
			}
		}(w)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var progWG sync.WaitGroup
	if e.progOut != nil && o.progress > 0 {
		progWG.Add(1)
		go func() {
			defer progWG.Done()
			progress(ctx, e.progOut, rec, begin, o.progress, done)
		}()
	}
	timer := time.NewTimer(o.warmup + o.duration)
	defer timer.Stop()
	warm := time.NewTimer(o.warmup)
	defer warm.Stop()
	for finished := false; !finished; {
		select {
		case <-warm.C:
			measured.Store(true)
		case <-timer.C:
			stop.Store(true)
		case <-e.ctx.Done():
			stop.Store(true)
		case <-done:
			finished = true
		}
	}
	end := time.Now()
	cancel()
	progWG.Wait()
	return rec.result(o, e.wl.name, measureStart, end), nil
}

// progress prints a line per interval: operations and throughput in the interval, its
// latency percentiles and the errors so far.
func progress(ctx context.Context, w io.Writer, rec *recorder, begin time.Time, every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	prev := rec.all.Snapshot()
	prevAt := begin
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case now := <-t.C:
			cur := rec.all.Snapshot()
			iv := cur.Sub(prev)
			secs := now.Sub(prevAt).Seconds()
			fmt.Fprintf(w, "[%6.1fs] %8d ok %9.0f/s  p50 %-8s p99 %-8s max %-8s errors %d\n",
				now.Sub(begin).Seconds(), cur.Count, float64(iv.Count)/secs,
				fmtDur(iv.Quantile(0.5)), fmtDur(iv.Quantile(0.99)), fmtDur(time.Duration(iv.Max)), rec.errOps.Load())
			prev, prevAt = cur, now
		}
	}
}
