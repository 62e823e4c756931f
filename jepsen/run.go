package jepsen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Config is one run of the suite.
type Config struct {
	// Bin is the imnode binary.
	Bin string
	// Nodes is the cluster size, 3 or 5.
	Nodes int
	// Duration is how long the workloads run under faults.
	Duration time.Duration
	// Seed drives every random choice of the suite (the schedule, the clients' choices).
	Seed int64
	// Faults are the fault names to draw from (AllFaults if nil; none if empty non-nil).
	Faults []string
	// Workloads to run: "register", "set", "msglog" (all if empty).
	Workloads []string
	// OutDir is where the run's report directory is created (jepsen/runs by default).
	OutDir string
	// Stale sends reads with X-Consistency: stale (the test of the test: the register
	// checker must then find a violation under a partition that isolates the leader).
	Stale bool
	// TLS runs the cluster in its secure mode (see Cluster.UseTLS).
	TLS bool
	// Clients is the number of concurrent clients per workload (default 3).
	Clients int
	// Retention, when above zero, runs the nodes with messageRetention set to it: the
	// msglog checker then takes messages removed by retention as gone, not lost, and checks
	// that none went before its time.
	Retention time.Duration
	// SnapshotEvery, when above zero, has the nodes snapshot every that many log entries
	// and keep a sixth of them behind it (Cluster.SnapshotEvery): nodes that join or fall
	// behind are then sent the whole state, and the run tests that path under the faults.
	SnapshotEvery int
	// CheckTimeout bounds each porcupine check (default 2 minutes); a timeout fails.
	CheckTimeout time.Duration
	// HoldMin/HoldMax bound how long a fault lasts, QuietMin/QuietMax the pause between
	// faults (defaults 3-8 s and 2-5 s).
	HoldMin, HoldMax, QuietMin, QuietMax time.Duration
	// Log receives progress lines (os.Stderr if nil).
	Log io.Writer
}

// Result is what a run found.
type Result struct {
	Dir      string            `json:"dir"`
	Seed     int64             `json:"seed"`
	Nodes    int               `json:"nodes"`
	Duration string            `json:"duration"`
	Faults   []string          `json:"faults"`
	Stale    bool              `json:"stale"`
	Timeline []Event           `json:"timeline"`
	Counts   map[string]Counts `json:"counts"`
	Verdicts []Verdict         `json:"verdicts"`
	Digests  []Digest          `json:"digests"`
	Valid    bool              `json:"valid"`
	Errors   []string          `json:"errors,omitempty"`
	// StatesRestored counts the states the nodes were sent and restored (their logs'
	// "state restored" lines): how often the run went through InstallSnapshot.
	StatesRestored int `json:"statesRestored"`
}

// Verdict returns the verdict of one checker, or nil.
func (r *Result) Verdict(checker string) *Verdict {
	for i := range r.Verdicts {
		if r.Verdicts[i].Checker == checker {
			return &r.Verdicts[i]
		}
	}
	return nil
}

// workload is one kind of client traffic with its checker.
type workload interface {
	name() string
	setup(c *Cluster, deadline time.Time) error
	run(ctx context.Context, id int, cl *client, h *History)
	final(c *Cluster, h *History, rng *rand.Rand)
	check(ops []Op, timeout time.Duration, dir string, ann []porcupine.Annotation) Verdict
}

func htmlIn(dir, name string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, name)
}

func (cfg *Config) defaults() error {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Nodes != 3 && cfg.Nodes != 5 {
		return fmt.Errorf("nodes must be 3 or 5, not %d", cfg.Nodes)
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 60 * time.Second
	}
	if cfg.Faults == nil {
		cfg.Faults = AllFaults
	}
	for _, f := range cfg.Faults {
		known := false
		for _, g := range AllFaults {
			known = known || f == g
		}
		if !known {
			return fmt.Errorf("unknown fault %q (known: %s)", f, strings.Join(AllFaults, ","))
		}
	}
	if len(cfg.Workloads) == 0 {
		cfg.Workloads = []string{"register", "set", "msglog"}
	}
	if cfg.OutDir == "" {
		cfg.OutDir = filepath.Join("jepsen", "runs")
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 3
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 2 * time.Minute
	}
	if cfg.HoldMax <= 0 {
		cfg.HoldMin, cfg.HoldMax = 3*time.Second, 8*time.Second
	}
	if cfg.QuietMax <= 0 {
		cfg.QuietMin, cfg.QuietMax = 2*time.Second, 5*time.Second
	}
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	if _, err := os.Stat(cfg.Bin); err != nil {
		return fmt.Errorf("imnode binary: %w", err)
	}
	return nil
}

// Run runs the suite once: start the cluster, set the workloads up, run them under faults
// for cfg.Duration, heal everything, take the final reads, check, and write the report.
// The error is about the run itself (the cluster did not start, nft failed); the
// verdicts are in Result (Valid false on any violation). ctx cancels the run early; every
// process it started is killed before it returns.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.OutDir, fmt.Sprintf("%s-seed%d", time.Now().Format("20060102-150405"), cfg.Seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &Result{Dir: dir, Seed: cfg.Seed, Nodes: cfg.Nodes, Duration: cfg.Duration.String(), Faults: cfg.Faults, Stale: cfg.Stale}
	logFile, err := os.Create(filepath.Join(dir, "run.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	var logMu sync.Mutex
	h := NewHistory()
	logf := func(format string, args ...interface{}) {
		logMu.Lock()
		defer logMu.Unlock()
		line := fmt.Sprintf("%8.2fs  %s\n", float64(h.Now())/1e9, fmt.Sprintf(format, args...))
		io.WriteString(cfg.Log, line)
		io.WriteString(logFile, line)
	}
	// Every start and restart uses this copy: a `make build` during the run must not mix
	// two versions of the server in one cluster (their state encodings may differ).
	bin, err := copyBinary(cfg.Bin, filepath.Join(dir, "data", "imnode"))
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	c, err := NewCluster(bin, dir, cfg.Nodes, rng, logf)
	if err != nil {
		return nil, err
	}
	defer c.Shutdown()
	if cfg.Retention > 0 {
		c.Args = append(c.Args, "-message-retention", cfg.Retention.String())
	}
	if cfg.TLS {
		if err := c.UseTLS(); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	if cfg.SnapshotEvery > 0 {
		if err := c.SnapshotEvery(cfg.SnapshotEvery); err != nil {
			return nil, err
		}
	}
	network, err := NewNet(c.Ports())
	if err != nil {
		return nil, err
	}
	defer network.Close()

	err = runPhases(ctx, cfg, c, network, h, rng, res, logf)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	c.Shutdown()
	res.StatesRestored = countInLogs(filepath.Join(dir, "nodes"), `msg="state restored"`)
	res.Valid = err == nil && len(res.Verdicts) > 0
	for _, v := range res.Verdicts {
		res.Valid = res.Valid && v.Valid
	}
	if werr := writeReport(res, h); werr != nil {
		return res, werr
	}
	logf("report in %s: %s", dir, map[bool]string{true: "VALID", false: "INVALID"}[res.Valid])
	if res.Valid {
		// The data dirs are only worth their space when something went wrong.
		os.RemoveAll(filepath.Join(dir, "data"))
	}
	return res, err
}

func runPhases(ctx context.Context, cfg Config, c *Cluster, network *Net, h *History, rng *rand.Rand, res *Result, logf func(string, ...interface{})) error {
	logf("starting %d nodes of %s on 127.0.0.%d+ ports %v", cfg.Nodes, cfg.Bin, firstIP, c.Ports())
	for _, n := range c.Members() {
		if err := c.Start(n); err != nil {
			return err
		}
	}
	if err := c.WaitReady(time.Now().Add(60 * time.Second)); err != nil {
		return fmt.Errorf("cluster did not become ready: %w (node logs in %s)", err, filepath.Join(res.Dir, "nodes"))
	}
	setupDeadline := time.Now().Add(60 * time.Second)
	if err := c.Login(setupDeadline); err != nil {
		return err
	}
	var wls []workload
	for _, name := range cfg.Workloads {
		switch name {
		case "register":
			wls = append(wls, newRegisterWorkload())
		case "set":
			wls = append(wls, newSetWorkload())
		case "msglog":
			w := newMsgWorkload()
			w.retention = cfg.Retention
			wls = append(wls, w)
		default:
			return fmt.Errorf("unknown workload %q", name)
		}
	}
	for _, w := range wls {
		if err := w.setup(c, setupDeadline); err != nil {
			return fmt.Errorf("setup %s: %w", w.name(), err)
		}
	}
	logf("setup done: %s; running %v under faults %v", c.describe(), cfg.Duration, cfg.Faults)

	nm := &Nemesis{c: c, net: network, h: h, rng: rand.New(rand.NewSource(rng.Int63())), faults: cfg.Faults,
		holdMin: cfg.HoldMin, holdMax: cfg.HoldMax, quietMin: cfg.QuietMin, quietMax: cfg.QuietMax, logf: logf}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	var wg sync.WaitGroup
	for _, w := range wls {
		for i := 0; i < cfg.Clients; i++ {
			cl := &client{c: c, rng: rand.New(rand.NewSource(rng.Int63())), stale: cfg.Stale}
			wg.Add(1)
			go func(w workload, i int) {
				defer wg.Done()
				w.run(runCtx, i, cl, h)
			}(w, i)
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); nm.Run(runCtx) }()
	wg.Wait()
	cancel()
	res.Timeline = nm.Timeline()
	if ctx.Err() != nil {
		return errors.New("run interrupted")
	}

	logf("healing: %s", strings.Join(nm.HealAll(), "; "))
	if err := c.WaitReady(time.Now().Add(90 * time.Second)); err != nil {
		res.Errors = append(res.Errors, "after healing: "+err.Error())
	}
	res.Digests = c.Digests(time.Now().Add(60 * time.Second))
	finalRng := rand.New(rand.NewSource(rng.Int63()))
	for _, w := range wls {
		w.final(c, h, finalRng)
	}
	logf("final reads done; checking")

	ann := annotations(res.Timeline)
	for _, w := range wls {
		v := w.check(h.Ops(w.name()), cfg.CheckTimeout, res.Dir, ann)
		logf("%-11s %s", v.Checker, v.Summary)
		res.Verdicts = append(res.Verdicts, v)
	}
	res.Verdicts = append(res.Verdicts, CheckConvergence(res.Digests))
	res.Counts = CountOps(h.Ops(""))
	return nil
}

// copyBinary copies the executable src to dst and returns dst's absolute path.
func copyBinary(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return filepath.Abs(dst)
}

// annotations turns the fault timeline into porcupine annotations, shown above the
// clients in the visualization.
func annotations(tl []Event) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, e := range tl {
		out = append(out, porcupine.Annotation{Tag: "nemesis", Start: e.Start, End: e.End,
			Description: e.Fault, Details: e.Detail + " / " + e.Heal, BackgroundColor: "#f4c7c3"})
	}
	return out
}

// CheckConvergence checks that every node answered the same applied index and the same
// state digest after healing.
func CheckConvergence(ds []Digest) Verdict {
	v := Verdict{Checker: "convergence", Valid: true}
	if len(ds) == 0 {
		v.problem("no digests")
	}
	for _, d := range ds {
		if d.Err != "" {
			v.problem("%s: GET /cluster/digest: %s", d.Node, d.Err)
			continue
		}
		if d.AppliedIndex != ds[0].AppliedIndex || d.Digest != ds[0].Digest {
			v.problem("%s at applied index %d has digest %s; %s at %d has %s", d.Node, d.AppliedIndex, d.Digest, ds[0].Node, ds[0].AppliedIndex, ds[0].Digest)
		}
	}
	if v.Valid {
		v.Summary = fmt.Sprintf("all %d nodes at applied index %d with digest %s", len(ds), ds[0].AppliedIndex, ds[0].Digest)
	} else {
		v.Summary = fmt.Sprintf("nodes differ (%d problems)", len(v.Problems))
	}
	return v
}

// countInLogs counts the lines of the *.log files in dir that contain s.
func countInLogs(dir, s string) int {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	n := 0
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		n += bytes.Count(b, []byte(s))
	}
	return n
}
