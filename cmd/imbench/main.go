package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imnode/imnode/apiclient"
)

// Hard caps: whatever the flags say, one invocation stays bounded.
const (
	hardMaxDuration    = 10 * time.Minute
	hardMaxOps         = 100_000_000
	hardMaxConcurrency = 4096
	hardMaxRuns        = 64
	hardMaxUsers       = 1_000_000
)

// options are the parsed flags. concurrency is the value of the run in progress; a sweep
// (-c 1,16,64) sets it per run.
type options struct {
	nodes       []string
	workloads   []string
	concs       []int
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	timeout     time.Duration
	progress    time.Duration
	maxOps      int64
	users       int
	convs       int
	groupSize   int
	msgBytes    int
	pullN       int
	readBatch   int
	setupConc   int
	mix         string
	mixWeights  [numKinds]int
	setupMode   string
	prefix      string
	secret      string
	admin       string
	jsonOut     string
	stale       bool
	targets     bool
	ceiling     map[int]float64 // -ceiling: bare raft's applies/s by concurrency
	serverPprof string
	cpuProfile  string
	caCert      string
	hotConvs    int
	hotFrac     float64
	target      string
	newConns    bool
	tlsConf     *tls.Config // set from caCert: the nodes serve HTTPS
	args        []string
}

// client is an API client of node addr, over HTTPS when -cacert is given.
func (o *options) client(addr string) *apiclient.Client {
	if o.tlsConf != nil {
		return apiclient.NewTLS(addr, o.tlsConf)
	}
	return apiclient.New(addr)
}

// scheme is the nodes' URL scheme.
func (o *options) scheme() string {
	if o.tlsConf != nil {
		return "https://"
	}
	return "http://"
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{args: args}
	fs := flag.NewFlagSet("imbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.String("nodes", "127.0.0.1:10002", "comma-separated host:port of the nodes' HTTP API; requests go to them in turn")
	wls := fs.String("workload", "send_single", "comma-separated workloads, run one after another:"+workloadHelp())
	cs := fs.String("c", "16", "concurrency: workers in a closed loop; a comma list (1,16,64) runs a sweep")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured duration of each run (max "+hardMaxDuration.String()+")")
	fs.Int64Var(&o.maxOps, "n", 0, "stop each run after this many measured operations (0: by -d only); with -n and no -d, -d is "+hardMaxDuration.String())
	fs.DurationVar(&o.warmup, "warmup", 0, "unmeasured warm-up before each run")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.DurationVar(&o.progress, "progress", time.Second, "progress line interval on stderr (0: none)")
	fs.IntVar(&o.users, "users", 1000, "users in the fixture")
	fs.IntVar(&o.convs, "convs", 1000, "single-chat conversations (user pairs) the sends and pulls spread over")
	fs.IntVar(&o.groupSize, "group-size", 1000, "group the send_group workload sends to: 10, 100 or 1000")
	fs.IntVar(&o.msgBytes, "msg-bytes", 300, "text message size in bytes")
	fs.IntVar(&o.pullN, "pull-n", 10, "pull reads seq 1..pull-n of a conversation")
	fs.IntVar(&o.readBatch, "read-batch", 1, "uids per get_user_info")
	fs.StringVar(&o.mix, "mix", "send_single=50,read_user=40,pull=10", "weights of the mix workload")
	fs.StringVar(&o.setupMode, "setup", "auto", "auto: create the fixture unless an earlier run did; always: redo it; never: use what exists")
	fs.IntVar(&o.setupConc, "setup-c", 32, "concurrency of the setup requests")
	fs.StringVar(&o.prefix, "prefix", "imb", "prefix of the fixture's uids")
	fs.StringVar(&o.secret, "secret", "tuoyun", "the nodes' secret")
	fs.StringVar(&o.admin, "admin", "openIM123456", "an app administrator uid (appManagerUid)")
	fs.StringVar(&o.jsonOut, "json", "", "write every run's results as JSON to this file")
	fs.BoolVar(&o.stale, "stale", false, "send reads with X-Consistency: stale instead of linearizable")
	fs.BoolVar(&o.targets, "targets", false, "check the runs against the performance targets (make bench)")
	ceilings := fs.String("ceiling", "", "comma-separated bin/raftceiling -json files of this session: check every write run at c = 64 against 1.5x their mean applies/s")
	fs.StringVar(&o.serverPprof, "server-pprof", "", "directory: fetch a CPU profile of every node over each run from /debug/pprof")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write imbench's own CPU profile to this file")
	fs.IntVar(&o.hotConvs, "hot-convs", 0, "skew: -hot-frac of the single-chat sends and pulls go to the first hot-convs conversations, the rest to the others (0: spread evenly)")
	fs.Float64Var(&o.hotFrac, "hot-frac", 0.9, "with -hot-convs, the fraction of ops that go to the hot conversations")
	fs.StringVar(&o.target, "target", "all", "nodes the requests go to: all (in turn), leader, followers, or nodeN (the N-th of -nodes)")
	fs.BoolVar(&o.newConns, "new-conns", false, "open a new connection for every request (Connection: close) instead of keep-alive")
	fs.StringVar(&o.caCert, "cacert", "", "PEM CA file: the nodes serve HTTPS with certificates it signed (make cluster-tls)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.caCert != "" {
		b, err := os.ReadFile(o.caCert)
		if err != nil {
			return nil, fmt.Errorf("-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("-cacert %s holds no PEM certificate", o.caCert)
		}
		o.tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if *ceilings != "" {
		c, err := readCeilings(strings.Split(*ceilings, ","))
		if err != nil {
			return nil, fmt.Errorf("-ceiling: %w", err)
		}
		o.ceiling = c
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	dSet := false
	fs.Visit(func(f *flag.Flag) { dSet = dSet || f.Name == "d" })
	if o.maxOps > 0 && !dSet {
		o.duration = hardMaxDuration
	}
	for _, n := range splitList(*nodes) {
		if _, _, err := net.SplitHostPort(n); err != nil {
			return nil, fmt.Errorf("-nodes: %q is not host:port: %w", n, err)
		}
		o.nodes = append(o.nodes, n)
	}
	if len(o.nodes) == 0 {
		return nil, errors.New("-nodes: give at least one host:port")
	}
	o.workloads = splitList(*wls)
	for _, w := range o.workloads {
		if desc, ok := plannedWorkloads[w]; ok {
			return nil, fmt.Errorf("-workload %s (%s) is planned for client delivery and not implemented yet", w, desc)
		}
		if workloads[w] == nil {
			return nil, fmt.Errorf("-workload: unknown %q (want %s)", w, workloadNames())
		}
	}
	for _, c := range splitList(*cs) {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 || n > hardMaxConcurrency {
			return nil, fmt.Errorf("-c: %q must be an integer 1..%d", c, hardMaxConcurrency)
		}
		o.concs = append(o.concs, n)
	}
	var err error
	if o.mixWeights, err = parseMix(o.mix); err != nil {
		return nil, err
	}
	return o, o.validate()
}

func (o *options) validate() error {
	switch {
	case len(o.workloads) == 0 || len(o.concs) == 0:
		return errors.New("give at least one -workload and one -c")
	case len(o.workloads)*len(o.concs) > hardMaxRuns:
		return fmt.Errorf("%d runs requested; at most %d per invocation", len(o.workloads)*len(o.concs), hardMaxRuns)
	case o.duration <= 0 || o.duration > hardMaxDuration:
		return fmt.Errorf("-d must be in (0, %v], got %v", hardMaxDuration, o.duration)
	case o.warmup < 0 || o.warmup > time.Minute:
		return fmt.Errorf("-warmup must be in [0, 1m], got %v", o.warmup)
	case o.maxOps < 0 || o.maxOps > hardMaxOps:
		return fmt.Errorf("-n must be in [0, %d], got %d", hardMaxOps, o.maxOps)
	case o.timeout <= 0 || o.timeout > time.Minute:
		return fmt.Errorf("-timeout must be in (0, 1m], got %v", o.timeout)
	case o.users < 2 || o.users > hardMaxUsers:
		return fmt.Errorf("-users must be in [2, %d], got %d", hardMaxUsers, o.users)
	case o.convs < 1 || o.convs > maxConvs(o.users):
		return fmt.Errorf("-convs must be in [1, %d] for %d users, got %d", max(maxConvs(o.users), 1), o.users, o.convs)
	case o.groupSize != 10 && o.groupSize != 100 && o.groupSize != 1000:
		return fmt.Errorf("-group-size must be 10, 100 or 1000, got %d", o.groupSize)
	case o.msgBytes < 1 || o.msgBytes > 64<<10:
		return fmt.Errorf("-msg-bytes must be in [1, 65536], got %d", o.msgBytes)
	case o.pullN < 1 || o.pullN > 1000:
		return fmt.Errorf("-pull-n must be in [1, 1000], got %d", o.pullN)
	case o.readBatch < 1 || o.readBatch > 1000:
		return fmt.Errorf("-read-batch must be in [1, 1000], got %d", o.readBatch)
	case o.setupConc < 1 || o.setupConc > 1024:
		return fmt.Errorf("-setup-c must be in [1, 1024], got %d", o.setupConc)
	case o.setupMode != "auto" && o.setupMode != "always" && o.setupMode != "never":
		return fmt.Errorf("-setup must be auto, always or never, got %q", o.setupMode)
	case o.prefix == "" || len(o.prefix) > 32:
		return fmt.Errorf("-prefix must be 1..32 characters")
	case o.hotConvs < 0 || o.hotConvs > o.convs:
		return fmt.Errorf("-hot-convs must be in [0, -convs %d], got %d", o.convs, o.hotConvs)
	case o.hotFrac < 0 || o.hotFrac > 1:
		return fmt.Errorf("-hot-frac must be in [0, 1], got %v", o.hotFrac)
	}
	if err := validTarget(o.target, len(o.nodes)); err != nil {
		return err
	}
	for _, w := range o.workloads {
		if o.needsGroup(w) && o.groupSize > o.users {
			return fmt.Errorf("-group-size %d needs -users >= %d", o.groupSize, o.groupSize)
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "imbench:", err)
		stop()
		os.Exit(1)
	}
}

// run does the whole invocation: token, setup, every run of the sweep, summary, JSON.
func run(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	token, err := adminToken(o)
	if err != nil {
		return err
	}
	f := newFixture(o)
	if err := setup(o, f, token, stderr); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	rep := &Report{Tool: "imbench", Args: o.args}
	base := *o
	for _, name := range o.workloads {
		wl := workloads[name]
		if o.needsGroup(name) && f.group == nil {
			return fmt.Errorf("workload %s: no group of %d in the fixture (run with -setup auto or always)", name, o.groupSize)
		}
		for _, c := range o.concs {
			if ctx.Err() != nil {
				break
			}
			ro := base
			ro.concurrency = c
			e := &env{ctx: ctx, o: &ro, f: f, token: token, wl: wl, progOut: stderr}
			fmt.Fprintf(stderr, "run %s c=%d for %v on %s\n", name, c, ro.duration, strings.Join(ro.nodes, ","))
			var prof *serverProfiles
			if o.serverPprof != "" {
				prof = startServerProfiles(&ro, token, name, stderr)
			}
			var res *Result
			if wl.run != nil {
				res, err = wl.run(e)
			} else {
				res, err = runHTTP(e)
			}
			prof.wait()
			if err != nil {
				return fmt.Errorf("%s c=%d: %w", name, c, err)
			}
			res.WriteText(stdout)
			fmt.Fprintln(stdout)
			rep.Runs = append(rep.Runs, res)
			if o.jsonOut != "" { // after every run, so an interrupted sweep keeps what it measured
				if err := rep.WriteJSON(o.jsonOut); err != nil {
					return err
				}
			}
		}
	}
	if o.targets {
		rep.Targets = checkTargets(rep.Runs)
	}
	rep.Targets = append(rep.Targets, checkCeiling(rep.Runs, o.ceiling)...)
	if len(rep.Runs) > 1 || len(rep.Targets) > 0 {
		rep.WriteSummary(stdout)
	}
	if o.jsonOut != "" {
		if err := rep.WriteJSON(o.jsonOut); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", o.jsonOut)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted; the runs above are complete, the last one is cut short")
	}
	return nil
}
