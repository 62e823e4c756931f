package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleFileIsTheDefaults(t *testing.T) {
	c, err := Load([]string{"-config", "imnode.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(c, want) {
		t.Fatalf("example file differs from Default():\n got %+v\nwant %+v", c, want)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("nodeID: fromfile\nsecret: filesecret\napplyTimeout: 7s\nraft:\n  maxVoters: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IMNODE_SECRET", "envsecret")
	t.Setenv("IMNODE_NODE_ID", "fromenv")
	c, err := Load([]string{"-config", path, "-node-id", "fromflag", "-join", "a:1, b:2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeID != "fromflag" || c.Secret != "envsecret" || c.ApplyTimeout.D() != 7*time.Second || c.Raft.MaxVoters != 3 {
		t.Fatalf("got %+v", c)
	}
	if !reflect.DeepEqual(c.Join, []string{"a:1", "b:2"}) {
		t.Fatalf("got join %v, want [a:1 b:2]", c.Join)
	}
}

func TestNodeIDAloneNamesTheDataDir(t *testing.T) {
	c, err := Load([]string{"-node-id", "n7"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "data/n7" {
		t.Fatalf("got %s, want data/n7", c.DataDir)
	}
}

func TestValidateRefuses(t *testing.T) {
	cases := map[string][]string{
		"secret":         {"-http-addr", "0.0.0.0:10002"},
		"loopback":       {"-gossip-addr", "10.1.2.3:10004"},
		"bootstrap":      {"-bootstrap-expect", "0"},
		"bad address":    {"-raft-addr", "nope"},
		"extra argument": {"stray"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(args); err == nil {
				t.Fatalf("Load(%v) accepted", args)
			}
		})
	}
	bad := Default()
	bad.Secret = strings.Repeat("x", 33)
	if err := bad.Validate(); err == nil {
		t.Fatal("33-char secret accepted")
	}
	for _, d := range []time.Duration{-time.Millisecond, 2 * time.Second} {
		bad := Default()
		bad.FSMCommitDelay = Duration(d)
		if err := bad.Validate(); err == nil {
			t.Fatalf("fsmCommitDelay %v accepted", d)
		}
	}
	ok := Default()
	ok.FSMCommitDelay = 0 // commit every raft batch
	if err := ok.Validate(); err != nil {
		t.Fatalf("fsmCommitDelay 0 refused: %v", err)
	}
	bad = Default()
	bad.Raft.StateSendRate = -1
	if err := bad.Validate(); err == nil {
		t.Fatal("raft.stateSendRate -1 accepted")
	}
	ok = Default()
	ok.Raft.StateSendRate = 0 // no cap
	if err := ok.Validate(); err != nil {
		t.Fatalf("raft.stateSendRate 0 refused: %v", err)
	}
}

// TestGossipKeyRequiredOffLoopback: with every example key replaced, a node on a public
// address still refuses to start without a gossip key, and names the key to set.
func TestGossipKeyRequiredOffLoopback(t *testing.T) {
	c := Default()
	c.Secret, c.TokenPolicy.AccessSecret, c.ClusterKey = "s3cret", "signing-key", "cluster-key"
	c.GossipAddr = "10.1.2.3:10004"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "gossipKey") {
		t.Fatalf("got %v, want an error naming gossipKey", err)
	}
	c.GossipKey = base64.StdEncoding.EncodeToString(make([]byte, 32))
	if err := c.Validate(); err != nil {
		t.Fatalf("with a gossip key: %v", err)
	}
	for name, k := range map[string]string{"not base64": "***", "15 bytes": base64.StdEncoding.EncodeToString(make([]byte, 15))} {
		bad := c
		bad.GossipKey = k
		if err := bad.Validate(); err == nil {
			t.Fatalf("gossip key %s accepted", name)
		}
		bad = c
		bad.GossipKeys = []string{k}
		if err := bad.Validate(); err == nil {
			t.Fatalf("gossipKeys entry %s accepted", name)
		}
	}
	noPrimary := Default()
	noPrimary.GossipKeys = []string{c.GossipKey}
	if err := noPrimary.Validate(); err == nil {
		t.Fatal("gossipKeys without gossipKey accepted")
	}
	caOnly := Default()
	caOnly.TLS.CAFile = "ca.pem"
	if err := caOnly.Validate(); err == nil {
		t.Fatal("tls.caFile without a certificate accepted")
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(path, []byte("nodeId: typo\n"), 0o644)
	if _, err := Load([]string{"-config", path}); err == nil {
		t.Fatal("unknown key accepted")
	}
}
