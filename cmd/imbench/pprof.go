package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// serverProfiles fetches /debug/pprof/profile from every node while a run goes on. A
// node without pprof (404) is reported once per run and otherwise ignored: profiling is a
// hint, never a reason to fail a benchmark.
type serverProfiles struct {
	wg sync.WaitGroup
}

func startServerProfiles(o *options, token, workload string, log io.Writer) *serverProfiles {
	p := &serverProfiles{}
	if err := os.MkdirAll(o.serverPprof, 0o755); err != nil {
		fmt.Fprintf(log, "server-pprof: %v\n", err)
		return p
	}
	secs := int(math.Ceil((o.warmup + o.duration).Seconds()))
	client := &http.Client{Timeout: time.Duration(secs)*time.Second + 30*time.Second}
	for _, n := range o.nodes {
		p.wg.Add(1)
		go func(n string) {
			defer p.wg.Done()
			name := fmt.Sprintf("%s-c%d-%s.pprof", workload, o.concurrency, strings.ReplaceAll(n, ":", "_"))
			path := filepath.Join(o.serverPprof, name)
			if err := fetchProfile(client, n, token, secs, path); err != nil {
				fmt.Fprintf(log, "server-pprof %s: %v\n", n, err)
				return
			}
			fmt.Fprintf(log, "server-pprof: wrote %s (go tool pprof -top %s)\n", path, path)
		}(n)
	}
	return p
}

func fetchProfile(client *http.Client, node, token string, secs int, path string) error {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", node, secs), nil)
	if err != nil {
		return err
	}
	req.Header.Set("token", token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// wait blocks until every fetch has ended; nil-safe.
func (p *serverProfiles) wait() {
	if p != nil {
		p.wg.Wait()
	}
}
