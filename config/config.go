// Package config holds imnode's configuration: defaults, the YAML file, command-line
// flags and IMNODE_* environment variables, and their validation.
//
// Precedence, lowest to highest: defaults, YAML file (-config), environment, flags.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Example values shipped so that `imnode` alone answers the spec's requests verbatim. A node
// that binds a non-loopback address with them refuses to start (see Validate).
const (
	ExampleSecret       = "tuoyun"
	ExampleAccessSecret = "imnode-example-signing-key-change-me"
	ExampleClusterKey   = "imnode-example-cluster-key-change-me"
)

// Duration is a time.Duration that reads "24h", "500ms" or a number of seconds from YAML.
type Duration time.Duration

// UnmarshalYAML accepts Go duration strings and plain integers (seconds).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if secs, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		*d = Duration(time.Duration(secs) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 500ms, 10s, 24h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (interface{}, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// TokenPolicy configures the JWTs issued by auth/*.
type TokenPolicy struct {
	// AccessSecret signs tokens (HS256). Every node of a cluster must share it.
	AccessSecret string `yaml:"accessSecret"`
	// AccessExpire is the token lifetime in days.
	AccessExpire int `yaml:"accessExpire"`
}

// TLS configures TLS for the API, the raft transport and calls between nodes. With
// certFile and keyFile set, the API serves HTTPS, raft connections use mutual TLS (each
// side verifies the other's certificate against caFile), and a node forwarding to another
// verifies that node's certificate. Files are reloaded on SIGHUP and when they change.
type TLS struct {
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// CAFile is the PEM file of the CA(s) that sign every node's certificate. Empty: the
	// node's own certificate is the only one trusted (nodes that share one self-signed
	// certificate).
	CAFile string `yaml:"caFile"`
	// ServerName, if set, is the DNS name every node's certificate must carry; empty: a
	// node's certificate must name the host of its address (an IP SAN for an IP address).
	ServerName string `yaml:"serverName"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Raft tunes the consensus layer.
type Raft struct {
	// SnapshotThreshold is how many log entries since the last snapshot trigger a new one.
	SnapshotThreshold uint64 `yaml:"snapshotThreshold"`
	// SnapshotInterval is how often the threshold is checked.
	SnapshotInterval Duration `yaml:"snapshotInterval"`
	// TrailingLogs is how many entries stay in the log after a snapshot, for slow followers.
	TrailingLogs uint64 `yaml:"trailingLogs"`
	// SnapshotsRetained is how many snapshot files are kept on disk.
	SnapshotsRetained int `yaml:"snapshotsRetained"`
	// StateSendRate caps, in MiB/s, how fast a leader reads fsm.db to send it to a follower
	// that needs the whole state (a new or wiped node). Read at full speed, the state takes
	// the disk from every fsync of the cluster's writes; 0 sends as fast as it goes.
	StateSendRate int `yaml:"stateSendRate"`
	// MaxAppendEntries caps entries per AppendEntries RPC and per apply batch.
	MaxAppendEntries int `yaml:"maxAppendEntries"`
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout are raft's timers.
	HeartbeatTimeout   Duration `yaml:"heartbeatTimeout"`
	ElectionTimeout    Duration `yaml:"electionTimeout"`
	LeaderLeaseTimeout Duration `yaml:"leaderLeaseTimeout"`
	// MaxVoters is how many voters the leader keeps; further members stay non-voters.
	MaxVoters int `yaml:"maxVoters"`
	// DeadNodeTimeout, when positive, lets the leader remove a member that gossip has seen
	// dead for this long, but only while the remaining voters keep a healthy majority.
	DeadNodeTimeout Duration `yaml:"deadNodeTimeout"`
	// NoCommandPacking makes the leader propose every write as an entry of its own instead
	// of packing the writes waiting together into one (fsm.CmdBatch). Nodes older than
	// packing stop on a packed entry, so set it while a cluster is upgraded to this version
	// and clear it once every node runs it.
	NoCommandPacking bool `yaml:"noCommandPacking"`
}

// Log configures log/slog output.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Config is the whole configuration of one node.
type Config struct {
	NodeID          string   `yaml:"nodeID"`
	DataDir         string   `yaml:"dataDir"`
	HTTPAddr        string   `yaml:"httpAddr"`
	RaftAddr        string   `yaml:"raftAddr"`
	GossipAddr      string   `yaml:"gossipAddr"`
	Join            []string `yaml:"join"`
	BootstrapExpect int      `yaml:"bootstrapExpect"`

	// Secret is the shared secret of auth/user_register and auth/user_token (≤ 32 chars).
	Secret string `yaml:"secret"`
	// AppManagerUID lists the app administrators' uids.
	AppManagerUID []string    `yaml:"appManagerUid"`
	TokenPolicy   TokenPolicy `yaml:"tokenPolicy"`

	// ClusterKey authenticates calls between nodes (forwarded writes, read index, internal
	// routes). Every node of a cluster must share it.
	ClusterKey string `yaml:"clusterKey"`
	// GossipKey, when set, encrypts memberlist traffic (base64 of 16, 24 or 32 bytes). It is
	// required on any address that is not loopback.
	GossipKey string `yaml:"gossipKey"`
	// GossipKeys are further keys gossip accepts (but does not encrypt with): the old or the
	// new key during a rotation (see the README, "Securing a cluster").
	GossipKeys []string `yaml:"gossipKeys"`
	TLS        TLS      `yaml:"tls"`

	// IdempotencyRetention is how long an operationID is remembered for deduplication.
	IdempotencyRetention Duration `yaml:"idempotencyRetention"`
	// MessageRetention, when above zero, is how long messages are kept: the leader
	// periodically proposes the removal of messages whose send time (log time) is older.
	// 0 keeps every message forever.
	MessageRetention Duration `yaml:"messageRetention"`
	// MaxBodyBytes caps request bodies; larger ones get HTTP 413.
	MaxBodyBytes int `yaml:"maxBodyBytes"`
	// ApplyTimeout bounds how long a write waits for a leader and a commit.
	ApplyTimeout Duration `yaml:"applyTimeout"`
	// ReadTimeout bounds how long a linearizable read waits for the leader's commit index.
	ReadTimeout Duration `yaml:"readTimeout"`
	// FSMCommitDelay is the longest gap between two commits of fsm.db while there are
	// writes: applied entries wait in one open transaction for a group commit (0: commit
	// every raft batch). Writes are acknowledged before it (they are durable in the raft
	// log); linearizable reads and WebSocket delivery wait for it, and shorten the gap
	// (fsm/commit.go).
	FSMCommitDelay Duration `yaml:"fsmCommitDelay"`
	// MetricsToken, when true, puts /metrics behind the admin token.
	MetricsRequireToken bool `yaml:"metricsRequireToken"`
	// Pprof serves /debug/pprof/* (behind the admin token) when true.
	Pprof bool `yaml:"pprof"`
	// LeaveOnTerminate makes SIGTERM leave the cluster (removed from the raft configuration);
	// SIGINT always stops without leaving.
	LeaveOnTerminate bool `yaml:"leaveOnTerminate"`

	// WebSocket limits (client delivery).
	MaxConnections   int `yaml:"maxConnections"`
	MaxFrameBytes    int `yaml:"maxFrameBytes"`
	SendBufferFrames int `yaml:"sendBufferFrames"`

	Raft Raft `yaml:"raft"`
	Log  Log  `yaml:"log"`
}

// Default returns the configuration `imnode` runs with when given nothing.
func Default() Config {
	return Config{
		NodeID:          "node1",
		DataDir:         "data/node1",
		HTTPAddr:        "127.0.0.1:10002",
		RaftAddr:        "127.0.0.1:10003",
		GossipAddr:      "127.0.0.1:10004",
		BootstrapExpect: 1,
		Secret:          ExampleSecret,
		AppManagerUID:   []string{"openIM123456", "openIM654321"},
		TokenPolicy:     TokenPolicy{AccessSecret: ExampleAccessSecret, AccessExpire: 90},
		ClusterKey:      ExampleClusterKey,

		IdempotencyRetention: Duration(24 * time.Hour),
		MaxBodyBytes:         1 << 20,
		ApplyTimeout:         Duration(5 * time.Second),
		ReadTimeout:          Duration(5 * time.Second),
		FSMCommitDelay:       Duration(20 * time.Millisecond),
		LeaveOnTerminate:     true,

		MaxConnections:   50000,
		MaxFrameBytes:    64 << 10,
		SendBufferFrames: 256,

		Raft: Raft{
			SnapshotThreshold:  8192,
			SnapshotInterval:   Duration(30 * time.Second),
			TrailingLogs:       10240,
			SnapshotsRetained:  2,
			StateSendRate:      64,
			MaxAppendEntries:   256,
			HeartbeatTimeout:   Duration(1000 * time.Millisecond),
			ElectionTimeout:    Duration(1000 * time.Millisecond),
			LeaderLeaseTimeout: Duration(500 * time.Millisecond),
			MaxVoters:          5,
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// Load builds the configuration from defaults, the -config file, IMNODE_* variables and
// the flags in args (without the program name).
func Load(args []string) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("imnode", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file")
	nodeID := fs.String("node-id", c.NodeID, "unique, stable node ID")
	dataDir := fs.String("data-dir", c.DataDir, "data directory (raft.db, snapshots/, fsm.db)")
	httpAddr := fs.String("http-addr", c.HTTPAddr, "API listen address")
	raftAddr := fs.String("raft-addr", c.RaftAddr, "raft transport address")
	gossipAddr := fs.String("gossip-addr", c.GossipAddr, "memberlist address (TCP and UDP)")
	join := fs.String("join", "", "comma-separated gossip addresses of existing members")
	expect := fs.Int("bootstrap-expect", c.BootstrapExpect, "servers to wait for before bootstrapping a new cluster")
	retention := fs.String("message-retention", "", "remove messages older than this (e.g. 720h; 0: keep forever)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *path != "" {
		b, err := os.ReadFile(*path)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config %s: %w", *path, err)
		}
	}
	if len(c.Join) == 0 {
		c.Join = nil // an empty YAML list and no list mean the same
	}
	if len(c.GossipKeys) == 0 {
		c.GossipKeys = nil
	}
	applyEnv(&c)
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["node-id"] {
		c.NodeID = *nodeID
	}
	if set["data-dir"] {
		c.DataDir = *dataDir
	} else if set["node-id"] && c.DataDir == Default().DataDir && *path == "" {
		c.DataDir = "data/" + c.NodeID
	}
	if set["http-addr"] {
		c.HTTPAddr = *httpAddr
	}
	if set["raft-addr"] {
		c.RaftAddr = *raftAddr
	}
	if set["gossip-addr"] {
		c.GossipAddr = *gossipAddr
	}
	if set["join"] {
		c.Join = splitList(*join)
	}
	if set["bootstrap-expect"] {
		c.BootstrapExpect = *expect
	}
	if set["message-retention"] {
		d, err := parseDuration(*retention)
		if err != nil {
			return c, fmt.Errorf("-message-retention: %w", err)
		}
		c.MessageRetention = d
	}
	return c, c.Validate()
}

func applyEnv(c *Config) {
	str := map[string]*string{
		"IMNODE_NODE_ID": &c.NodeID, "IMNODE_DATA_DIR": &c.DataDir, "IMNODE_HTTP_ADDR": &c.HTTPAddr,
		"IMNODE_RAFT_ADDR": &c.RaftAddr, "IMNODE_GOSSIP_ADDR": &c.GossipAddr, "IMNODE_SECRET": &c.Secret,
		"IMNODE_ACCESS_SECRET": &c.TokenPolicy.AccessSecret, "IMNODE_CLUSTER_KEY": &c.ClusterKey,
		"IMNODE_GOSSIP_KEY": &c.GossipKey, "IMNODE_LOG_LEVEL": &c.Log.Level, "IMNODE_LOG_FORMAT": &c.Log.Format,
	}
	for k, p := range str {
		if v, ok := os.LookupEnv(k); ok {
			*p = v
		}
	}
	if v, ok := os.LookupEnv("IMNODE_JOIN"); ok {
		c.Join = splitList(v)
	}
	if v, ok := os.LookupEnv("IMNODE_MESSAGE_RETENTION"); ok {
		if d, err := parseDuration(v); err == nil {
			c.MessageRetention = d
		} else {
			// Validate reports it: a retention that was asked for and not understood must
			// not silently mean "keep forever".
			c.MessageRetention = -1
		}
	}
	if v, ok := os.LookupEnv("IMNODE_BOOTSTRAP_EXPECT"); ok {
		if n, err := strconv.Atoi(v); err == nil {
			c.BootstrapExpect = n
		}
	}
}

// parseDuration reads a duration as the YAML file does: a Go duration string or plain
// seconds.
func parseDuration(s string) (Duration, error) {
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		return Duration(time.Duration(secs) * time.Second), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (like 500ms, 10s, 720h)", s)
	}
	return Duration(v), nil
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

// Validate reports the first setting that cannot work, in words an operator can act on.
func (c Config) Validate() error {
	switch {
	case c.NodeID == "" || len(c.NodeID) > 64:
		return errors.New("nodeID must be 1 to 64 characters")
	case c.DataDir == "":
		return errors.New("dataDir must be set")
	case c.BootstrapExpect < 1:
		return errors.New("bootstrapExpect must be at least 1")
	case c.Secret == "" || len(c.Secret) > 32:
		return errors.New("secret must be 1 to 32 characters")
	case c.TokenPolicy.AccessSecret == "":
		return errors.New("tokenPolicy.accessSecret must be set")
	case c.TokenPolicy.AccessExpire < 1:
		return errors.New("tokenPolicy.accessExpire must be at least 1 (days)")
	case len(c.AppManagerUID) == 0:
		return errors.New("appManagerUid must name at least one administrator uid")
	case c.ClusterKey == "":
		return errors.New("clusterKey must be set")
	case c.MaxBodyBytes < 1024:
		return errors.New("maxBodyBytes must be at least 1024")
	case c.ApplyTimeout <= 0 || c.ReadTimeout <= 0:
		return errors.New("applyTimeout and readTimeout must be positive")
	case c.MessageRetention < 0 || c.MessageRetention > 0 && c.MessageRetention.D() < time.Second:
		return errors.New("messageRetention must be 0 (keep every message) or at least 1s, like 720h; IMNODE_MESSAGE_RETENTION the same")
	case c.FSMCommitDelay < 0 || c.FSMCommitDelay.D() > time.Second:
		return errors.New("fsmCommitDelay must be 0 to 1s")
	case c.Raft.MaxVoters < 1:
		return errors.New("raft.maxVoters must be at least 1")
	case c.Raft.StateSendRate < 0:
		return errors.New("raft.stateSendRate must be 0 (no cap) or a rate in MiB/s")
	case c.Raft.MaxAppendEntries < 1 || c.Raft.MaxAppendEntries > 1024:
		return errors.New("raft.maxAppendEntries must be 1 to 1024")
	case c.Log.Format != "text" && c.Log.Format != "json":
		return errors.New("log.format must be text or json")
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return errors.New("tls.certFile and tls.keyFile go together")
	case (c.TLS.CAFile != "" || c.TLS.ServerName != "") && c.TLS.CertFile == "":
		return errors.New("tls.caFile and tls.serverName need tls.certFile and tls.keyFile")
	}
	if len(c.GossipKeys) > 0 && c.GossipKey == "" {
		return errors.New("gossipKeys need gossipKey: the key gossip encrypts with")
	}
	for i, k := range append([]string{c.GossipKey}, c.GossipKeys...) {
		if k == "" && i == 0 {
			continue
		}
		if _, err := DecodeGossipKey(k); err != nil {
			return err
		}
	}
	for _, a := range []struct{ name, addr string }{{"httpAddr", c.HTTPAddr}, {"raftAddr", c.RaftAddr}, {"gossipAddr", c.GossipAddr}} {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return fmt.Errorf("%s %q: %w", a.name, a.addr, err)
		}
		if !isLoopback(host) {
			switch {
			case c.Secret == ExampleSecret:
				return fmt.Errorf("%s %s is not a loopback address and secret is the example %q: set your own secret", a.name, a.addr, ExampleSecret)
			case c.TokenPolicy.AccessSecret == ExampleAccessSecret:
				return fmt.Errorf("%s %s is not a loopback address and tokenPolicy.accessSecret is the example key: set your own", a.name, a.addr)
			case c.ClusterKey == ExampleClusterKey:
				return fmt.Errorf("%s %s is not a loopback address and clusterKey is the example key: set your own", a.name, a.addr)
			case c.GossipKey == "":
				return fmt.Errorf("%s %s is not a loopback address and gossipKey is not set: gossip would travel unencrypted; "+
					"set gossipKey (or IMNODE_GOSSIP_KEY) to the same base64 key of 32 random bytes on every node, e.g. from `head -c 32 /dev/urandom | base64`", a.name, a.addr)
			}
		}
	}
	return nil
}

// DecodeGossipKey decodes a gossip key: base64 of 16, 24 or 32 bytes (AES-128, -192, -256).
func DecodeGossipKey(k string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	if n := len(b); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("gossip key is %d bytes; it must be 16, 24 or 32 (base64 of `head -c 32 /dev/urandom`)", n)
	}
	return b, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
