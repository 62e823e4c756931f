package jepsen

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteJSONLOrdersEvents(t *testing.T) {
	ops := []Op{
		{ID: 0, Process: 0, Workload: "register", F: "write", Key: "x", Value: "1", Invoke: 10, Complete: 40, Outcome: OK},
		{ID: 1, Process: 1, Workload: "register", F: "read", Key: "x", Invoke: 20, Complete: 30, Outcome: Unknown},
	}
	path := filepath.Join(t.TempDir(), "history.jsonl")
	if err := WriteJSONL(path, ops); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Type string `json:"type"`
			ID   int    `json:"id"`
			Op   *Op    `json:"op"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if (e.Type == "invoke") != (e.Op == nil) {
			t.Fatalf("event %s of op %d: op present %v, want only on completions", e.Type, e.ID, e.Op != nil)
		}
		got = append(got, e.Type+string(rune('0'+e.ID)))
	}
	want := []string{"invoke0", "invoke1", "unknown1", "ok0"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if c := CountOps(ops)["register"]; c.OK != 1 || c.Unknown != 1 || c.Fail != 0 {
		t.Fatalf("got counts %+v, want 1 ok and 1 unknown", c)
	}
}
