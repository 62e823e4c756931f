// Command imnode is an instant-messaging server speaking the OpenIM Server API, replicated
// over raft. Run alone it is a one-node cluster; see README.md for clusters.
//
//	imnode [flags]                      serve (flags in DESIGN.md §2, or -config FILE)
//	imnode restore -data-dir DIR FILE   turn a backup into a data dir for a new cluster
//	imnode check -data-dir DIR          check a stopped node's fsm.db and raft.db page by page
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/imnode/imnode/cluster"
	"github.com/imnode/imnode/config"
	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/httpapi"
	"github.com/imnode/imnode/internal/pki"
	"github.com/imnode/imnode/node"
)

func main() {
	if runSubcommand(os.Args[1:]) {
		return
	}
	cfg, err := config.Load(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "imnode:", err)
		os.Exit(2)
	}
	logger := newLogger(cfg.Log)
	setGCPercent()
	if err := run(cfg, logger); err != nil {
		logger.Error("imnode stopped", "err", err)
		os.Exit(1)
	}
}

// defaultGCPercent is the garbage collector's target unless GOGC says otherwise. The live
// heap is small (tens of MB: caches, the idempotency index, raft's log cache) and nearly
// every request allocates, so at Go's default of 100 the collector ran often enough to cost
// a tenth of the write throughput (interleaved runs of send_single at c = 64: 5,215 msg/s
// at 100, 5,828 at 200); 200 trades that for about twice the heap.
const defaultGCPercent = 200

func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}

func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// run starts every layer, serves until a signal, and stops them in reverse order.
func run(cfg config.Config, logger *slog.Logger) error {
	logger = logger.With("node", cfg.NodeID)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	gw := newGateway(cfg, logger)
	f, err := fsm.Open(filepath.Join(cfg.DataDir, "fsm.db"), fsm.Options{Logger: logger,
		OnCommit: gw.OnCommit, OnUsersDeleted: gw.OnUsersDeleted, OnNotices: gw.OnNotices,
		Awaits: gw.Awaits, CommitDelay: cfg.FSMCommitDelay.D()})
	if err != nil {
		return err
	}
	defer f.Close()
	certs, stopCerts, err := loadCerts(cfg, logger)
	if err != nil {
		return err
	}
	defer stopCerts()
	n, err := node.New(node.Options{Config: cfg, FSM: f, Logger: logger, TLS: certs})
	if err != nil {
		return err
	}
	defer n.Shutdown()
	cl, err := cluster.New(cfg, n, logger)
	if err != nil {
		return err
	}
	defer cl.Shutdown()
	api := httpapi.New(cfg, n, logger)
	if certs != nil {
		api.SetTLS(certs)
	}
	n.Register(api.Registry())
	cl.Register(api.Registry())
	startGateway(cfg, gw, f, n, api, logger)
	ln, err := httpapi.Listen(cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- api.Serve(ln) }()
	cl.Start()
	logger.Info("imnode started", "http", cfg.HTTPAddr, "raft", cfg.RaftAddr, "gossip", cfg.GossipAddr,
		"dataDir", cfg.DataDir, "bootstrapExpect", cfg.BootstrapExpect, "join", strings.Join(cfg.Join, ","))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var got os.Signal
	select {
	case got = <-sig:
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	leave := got == syscall.SIGTERM && cfg.LeaveOnTerminate
	logger.Info("stopping", "signal", got.String(), "leaveCluster", leave)

	stopGateway(gw, leave, logger)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := api.Shutdown(ctx); err != nil {
		logger.Warn("http drain", "err", err)
	}
	if leave {
		leaveCluster(n, cl, logger)
	}
	return nil
}

// loadCerts loads the node's TLS material when TLS is configured and reloads it on SIGHUP
// and when a file changes (checked every 5 s); the returned func stops that.
func loadCerts(cfg config.Config, logger *slog.Logger) (*pki.Store, func(), error) {
	if !cfg.TLS.Enabled() {
		return nil, func() {}, nil
	}
	st, err := pki.Load(pki.Files{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile,
		CAFile: cfg.TLS.CAFile, ServerName: cfg.TLS.ServerName}, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	stop := make(chan struct{})
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		for {
			select {
			case <-stop:
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		st.Watch(stop, reload, 5*time.Second)
	}()
	return st, func() {
		signal.Stop(hup)
		close(stop)
		<-done
		<-done
	}, nil
}

// leaveCluster removes this node from the raft configuration (through the leader, after
// handing leadership over) and then tells gossip it leaves, so the leader's reconcile loop
// does not add it back.
func leaveCluster(n *node.Node, cl *cluster.Cluster, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl.MarkLeaving()
	if err := n.Leave(ctx); err != nil {
		logger.Warn("leave raft configuration", "err", err)
	}
	if err := cl.Leave(3 * time.Second); err != nil {
		logger.Warn("gossip leave", "err", err)
	}
}
