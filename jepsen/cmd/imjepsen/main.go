// Command imjepsen runs imnode's fault-injection suite once against real bin/imnode
// processes and writes a report directory. It exits 1 on any violation, 2 when the run
// itself could not be carried out. See jepsen/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/imnode/imnode/jepsen"
)

func main() {
	var cfg jepsen.Config
	var faults, workloads string
	flag.StringVar(&cfg.Bin, "bin", "bin/imnode", "imnode binary")
	flag.IntVar(&cfg.Nodes, "nodes", 3, "cluster size: 3 or 5")
	flag.DurationVar(&cfg.Duration, "duration", 60*time.Second, "how long the workloads run under faults")
	flag.Int64Var(&cfg.Seed, "seed", 0, "random seed (0: from the clock, printed)")
	flag.StringVar(&faults, "faults", "all", "comma-separated faults ("+strings.Join(jepsen.AllFaults, ",")+"), all, or none")
	flag.StringVar(&workloads, "workloads", "register,set,msglog", "comma-separated workloads")
	flag.StringVar(&cfg.OutDir, "out", "jepsen/runs", "directory for the run's report directory")
	flag.BoolVar(&cfg.Stale, "stale", false, "send reads with X-Consistency: stale (the test of the test: expect a register violation)")
	flag.BoolVar(&cfg.TLS, "tls", false, "run the nodes with mutual TLS, verified forwarding, HTTPS and a gossip key (test certificates made for the run)")
	flag.IntVar(&cfg.Clients, "clients", 3, "concurrent clients per workload")
	flag.DurationVar(&cfg.Retention, "retention", 0, "run the nodes with messageRetention (at least 1s): the msglog checker takes removed messages as gone, not lost")
	flag.IntVar(&cfg.SnapshotEvery, "snapshot-every", 0, "nodes snapshot every N log entries and keep N/6 behind, so nodes that join or fall behind are sent the whole state (0: the config's defaults)")
	flag.DurationVar(&cfg.CheckTimeout, "check-timeout", 2*time.Minute, "porcupine timeout per checker (a timeout fails)")
	flag.Parse()
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano() % 1_000_000_000
	}
	switch faults {
	case "all":
	case "none", "":
		cfg.Faults = []string{}
	default:
		cfg.Faults = strings.Split(faults, ",")
	}
	cfg.Workloads = strings.Split(workloads, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "imjepsen: seed %d\n", cfg.Seed)
	res, err := jepsen.Run(ctx, cfg)
	if res != nil {
		fmt.Print(jepsen.Summary(res))
		fmt.Printf("report: %s\n", res.Dir)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "imjepsen: %v\n", err)
		os.Exit(2)
	}
	if !res.Valid {
		os.Exit(1)
	}
}
