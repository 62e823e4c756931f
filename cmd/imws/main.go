// Command imws measures imnode's WebSocket gateway: how many idle client connections the
// given nodes hold and what each costs in memory, and the latency from a send's
// acknowledgement to its delivery over a WebSocket on another node.
//
//	imws -nodes 127.0.0.1:10002,127.0.0.1:10012,127.0.0.1:10022 -conns 20000 -rate 1000 -d 30s
//
// It registers its own users (uids prefixed with -prefix), opens -conns idle connections
// spread over the nodes, reads each node's resident memory from /metrics before and
// after, then, with -rate > 0, sends -rate messages per second for -d through the HTTP
// API (msg/send_msg with user tokens) to receivers connected to a different node than
// the one each message is sent through. It prints the figures and writes them as JSON to
// -json (stdout with "-"). It talks only to the addresses in -nodes, and every phase is
// bounded in count and time.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// config is what the flags say.
type config struct {
	nodes     []string
	conns     int
	users     int
	rate      int
	duration  time.Duration
	pairs     int
	hold      time.Duration
	secret    string
	prefix    string
	jsonOut   string
	dialers   int
	sourceIPs int
	maxTime   time.Duration
}

// Limits that keep a mistyped flag from turning the tool into a flood.
const (
	maxConns    = 200000
	maxRate     = 20000
	maxDuration = 10 * time.Minute
)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("imws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.String("nodes", "127.0.0.1:10002", "comma-separated host:port of the nodes' HTTP API (the only addresses contacted)")
	fs.IntVar(&c.conns, "conns", 0, "idle WebSocket connections to open, spread over the nodes")
	fs.IntVar(&c.users, "users", 0, "distinct users for the idle connections (default min(conns, 1000))")
	fs.IntVar(&c.rate, "rate", 0, "messages per second for the latency phase (0: no latency phase)")
	fs.DurationVar(&c.duration, "d", 10*time.Second, "length of the latency phase")
	fs.IntVar(&c.pairs, "pairs", 100, "sender/receiver pairs in the latency phase")
	fs.DurationVar(&c.hold, "hold", 3*time.Second, "how long idle connections stay before memory is read")
	fs.StringVar(&c.secret, "secret", "tuoyun", "the nodes' secret (auth/user_register, auth/user_token)")
	fs.StringVar(&c.prefix, "prefix", "", "uid prefix of the users imws registers (default imws<unix time>)")
	fs.StringVar(&c.jsonOut, "json", "-", "write the result as JSON to this file (- for stdout, empty for none)")
	fs.IntVar(&c.dialers, "dial-concurrency", 64, "connections dialed at once")
	fs.IntVar(&c.sourceIPs, "source-ips", 0, "local 127.0.0.x source addresses to spread loopback connections over (default: one per 10,000 connections)")
	fs.DurationVar(&c.maxTime, "max-time", 15*time.Minute, "hard limit on the whole run")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, n := range strings.Split(*nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			c.nodes = append(c.nodes, n)
		}
	}
	switch {
	case len(c.nodes) == 0:
		return c, errors.New("-nodes is empty")
	case c.conns < 0 || c.conns > maxConns:
		return c, fmt.Errorf("-conns must be 0..%d", maxConns)
	case c.rate < 0 || c.rate > maxRate:
		return c, fmt.Errorf("-rate must be 0..%d", maxRate)
	case c.duration <= 0 || c.duration > maxDuration:
		return c, fmt.Errorf("-d must be in (0, %v]", maxDuration)
	case c.pairs < 1 || c.pairs > 10000:
		return c, errors.New("-pairs must be 1..10000")
	case c.conns == 0 && c.rate == 0:
		return c, errors.New("nothing to do: give -conns and/or -rate")
	}
	if c.users <= 0 {
		c.users = min(max(c.conns, 1), 1000)
	}
	if c.prefix == "" {
		c.prefix = fmt.Sprintf("imws%d", time.Now().Unix())
	}
	if c.dialers < 1 {
		c.dialers = 1
	}
	if c.sourceIPs <= 0 {
		c.sourceIPs = c.conns/10000 + 1
	}
	c.sourceIPs = min(c.sourceIPs, 250)
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "imws:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.maxTime)
	defer cancel()
	res, err := run(ctx, cfg, os.Stderr)
	if res != nil {
		if werr := writeJSON(cfg.jsonOut, res); werr != nil {
			fmt.Fprintln(os.Stderr, "imws: write json:", werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imws:", err)
		os.Exit(1)
	}
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
