// Command raftceiling measures bare raft on this machine: the ceiling imnode's write figures
// are compared with (`make bench-ceiling`).
//
// It runs three hashicorp/raft nodes in this one process, on raft's TCP transport over
// loopback, each with a raft-boltdb/v2 log and stable store (every append is a bbolt
// commit with fsync, as in imnode) and a batching bbolt FSM that stores each entry under
// its index and commits (with fsync) once per batch raft hands it. No HTTP, no JSON, no
// idempotency records, no command packing: one raft entry and one bbolt put per write.
// Raft is configured as imnode configures it (BatchApplyCh, MaxAppendEntries 256,
// CommitTimeout 5 ms, raft.db without freelist sync).
//
// For each concurrency in -c, that many goroutines call Apply on the leader in a closed
// loop with -bytes-byte entries for -d, and it prints applies/s and p50/p95/p99/max of the
// Apply-to-applied latency. One process instead of three shares one Go runtime and
// scheduler among the nodes; the fsyncs and the loopback TCP are the same.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// boltFSM applies each raft batch in one bbolt transaction (raft.BatchingFSM).
type boltFSM struct{ db *bolt.DB }

var bucket = []byte("log")

func (f *boltFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	err := f.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, l := range logs {
			if l.Type != raft.LogCommand {
				continue
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, l.Index), l.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return out
}

func (f *boltFSM) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *boltFSM) Snapshot() (raft.FSMSnapshot, error) { return noSnap{}, nil }

func (f *boltFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

type noSnap struct{}

func (noSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (noSnap) Release()                          {}

type node struct {
	r     *raft.Raft
	fsm   *boltFSM
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
}

func startNode(dir, id, addr string) (*node, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "fsm.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
		return nil, err
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"),
		BoltOptions: &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}})
	if err != nil {
		return nil, err
	}
	logs, err := raft.NewLogCache(1024, store)
	if err != nil {
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 1, io.Discard)
	if err != nil {
		return nil, err
	}
	tcpAddr, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	trans, err := raft.NewTCPTransport(addr, tcpAddr, 8, 10*time.Second, io.Discard)
	if err != nil {
		return nil, err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.CommitTimeout = 5 * time.Millisecond
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = 1 << 40 // no snapshots during a bounded run
	rc.SnapshotInterval = time.Hour
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Error, Output: os.Stderr})
	f := &boltFSM{db: db}
	r, err := raft.NewRaft(rc, f, logs, store, snaps, trans)
	if err != nil {
		return nil, err
	}
	return &node{r: r, fsm: f, store: store, trans: trans}, nil
}

func (n *node) close() {
	_ = n.r.Shutdown().Error()
	_ = n.trans.Close()
	_ = n.store.Close()
	_ = n.fsm.db.Close()
}

// Result is one run, as printed and written with -json.
type Result struct {
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Applies     int     `json:"applies"`
	Errors      int     `json:"errors"`
	PerSecond   float64 `json:"per_second"`
	P50ms       float64 `json:"p50_ms"`
	P95ms       float64 `json:"p95_ms"`
	P99ms       float64 `json:"p99_ms"`
	Maxms       float64 `json:"max_ms"`
}

func run(leader *raft.Raft, c int, d time.Duration, size int) Result {
	payload := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(payload)
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for time.Now().Before(deadline) {
				t := time.Now()
				if err := leader.Apply(payload, 10*time.Second).Error(); err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	took := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	return Result{Concurrency: c, Seconds: took.Seconds(), Applies: len(lat), Errors: errs,
		PerSecond: float64(len(lat)) / took.Seconds(), P50ms: q(0.50), P95ms: q(0.95), P99ms: q(0.99), Maxms: q(1)}
}

func main() {
	var (
		cList    = flag.String("c", "1,16,64", "concurrent appliers; a comma list runs a sweep")
		d        = flag.Duration("d", 10*time.Second, "duration of each run (at most 10 min)")
		size     = flag.Int("bytes", 300, "bytes per entry")
		basePort = flag.Int("port", 23001, "raft ports: this and the next two, on 127.0.0.1")
		dir      = flag.String("dir", "", "data directory (default: a temporary one, removed at exit)")
		jsonOut  = flag.String("json", "", "write the runs as JSON to this file")
	)
	flag.Parse()
	if *d <= 0 || *d > 10*time.Minute {
		log.Fatal("-d must be in (0, 10m]")
	}
	var cs []int
	for _, s := range strings.Split(*cList, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 || c > 4096 {
			log.Fatalf("bad -c %q", s)
		}
		cs = append(cs, c)
	}
	root := *dir
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "raftceiling-"); err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(root)
	}
	var (
		nodes   []*node
		servers []raft.Server
	)
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("n%d", i+1)
		addr := fmt.Sprintf("127.0.0.1:%d", *basePort+i)
		n, err := startNode(filepath.Join(root, id), id, addr)
		if err != nil {
			log.Fatalf("start %s: %v", id, err)
		}
		defer n.close()
		nodes = append(nodes, n)
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	if err := nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		log.Fatalf("bootstrap: %v", err)
	}
	var leader *raft.Raft
	for t := time.Now(); leader == nil; time.Sleep(50 * time.Millisecond) {
		if time.Since(t) > 20*time.Second {
			log.Fatal("no leader within 20 s")
		}
		for _, n := range nodes {
			if n.r.State() == raft.Leader {
				leader = n.r
			}
		}
	}
	// Both followers must be replicating before the first run is timed.
	if err := leader.Barrier(10 * time.Second).Error(); err != nil {
		log.Fatalf("barrier: %v", err)
	}
	fmt.Printf("bare raft: 3 nodes in one process, TCP on 127.0.0.1:%d-%d, raft-boltdb/v2 + batching bbolt FSM, %d-byte entries, %s per run\n",
		*basePort, *basePort+2, *size, *d)
	var results []Result
	for _, c := range cs {
		res := run(leader, c, *d, *size)
		results = append(results, res)
		fmt.Printf("ceiling c=%-3d %8.0f applies/s  p50 %6.2f ms  p95 %6.2f ms  p99 %6.2f ms  max %7.2f ms  errors %d\n",
			res.Concurrency, res.PerSecond, res.P50ms, res.P95ms, res.P99ms, res.Maxms, res.Errors)
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(results, "", "  ")
			if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
				log.Fatal(err)
			}
		}
	}
}
