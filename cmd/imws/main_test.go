package main

import (
	"context"
	"github.com/imnode/imnode/internal/proctest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/imnode/imnode/apiclient"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-conns", "10"}, true},
		{[]string{"-rate", "100", "-d", "1s"}, true},
		{[]string{}, false},                          // nothing to do
		{[]string{"-conns", "1000000"}, false},       // over the bound
		{[]string{"-rate", "10", "-d", "1h"}, false}, // too long
		{[]string{"-nodes", "", "-conns", "1"}, false},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("%v: err %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
	c, _ := parseFlags([]string{"-conns", "25000", "-nodes", "a:1, b:2"}, io.Discard)
	if len(c.nodes) != 2 || c.sourceIPs != 3 || c.users != 1000 {
		t.Errorf("got nodes %v, sourceIPs %d, users %d", c.nodes, c.sourceIPs, c.users)
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d)
	if s.P50 != 50 || s.P90 != 90 || s.P99 != 99 || s.Max != 100 {
		t.Fatalf("got %+v, want p50 50, p90 90, p99 99, max 100", s)
	}
	if (summarize(nil) != Summary{}) {
		t.Fatal("empty summary not zero")
	}
}

// TestRunAgainstNode runs both phases, small, against a real one-node imnode.
func TestRunAgainstNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real imnode process")
	}
	addr := startNode(t)
	cfg, err := parseFlags([]string{"-nodes", addr, "-conns", "60", "-users", "7", "-hold", "100ms",
		"-rate", "100", "-d", "2s", "-pairs", "5", "-json", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := run(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Idle == nil || res.Idle.Connected != 60 || res.Idle.PerNode[0].GaugeConnected != 60 {
		t.Fatalf("idle: %+v", res.Idle)
	}
	l := res.Latency
	if l == nil || l.Acked < 150 || l.Delivered != l.Acked || l.Lost != 0 || l.Duplicates != 0 {
		t.Fatalf("latency: %+v", l)
	}
}

func startNode(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("IMNODE_BIN")
	dir := t.TempDir()
	if bin == "" {
		bin = filepath.Join(dir, "imnode")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/imnode/imnode/cmd/imnode").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	free := func() string { return proctest.FreeAddr(t) }
	httpAddr := free()
	log, err := os.Create(filepath.Join(dir, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-node-id", "n1", "-data-dir", filepath.Join(dir, "n1"), "-http-addr", httpAddr,
		"-raft-addr", free(), "-gossip-addr", free())
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	})
	c := apiclient.New(httpAddr)
	c.Timeout = time.Second
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r, err := c.Get("readyz"); err == nil && r.HTTPStatus == 200 {
			return httpAddr
		}
	}
	b, _ := os.ReadFile(log.Name())
	t.Fatalf("node not ready in 30 s:\n%s", b)
	return ""
}
