package fsm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Open refuses an fsm.db cut short (bbolt's open died of a SIGBUS) or whose root or freelist
// page is not one (it panicked), and says what to do; a missing or empty file is created as
// before.
func TestOpenRefusesAFileCutShort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fsm.db")
	if err := CheckBoltFile(path); err != nil {
		t.Fatalf("missing file: %v, want nil (bbolt creates it)", err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckBoltFile(path); err != nil {
		t.Fatalf("empty file: %v, want nil (bbolt initialises it)", err)
	}
	// No valid meta at all: bbolt's open says what is wrong, as before.
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckBoltFile(path); err != nil {
		t.Fatalf("file without a meta page: %v, want nil (bbolt's open reports it)", err)
	}
	if f, err := Open(path, Options{}); err == nil {
		f.Close()
		t.Fatalf("open of a file that is no bbolt file: got no error")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, f: mustOpen(t, path, Options{}), path: path, now: t0}
	populate(h)
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CheckBoltFile(path); err != nil {
		t.Fatalf("whole file: %v", err)
	}
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range corruptStates(t, whole) {
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := Open(path, Options{})
		if err == nil {
			f.Close()
			t.Fatalf("open of an fsm.db %s: got no error", name)
		}
		if !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "-join") {
			t.Fatalf("open of an fsm.db %s: %v, want it to say it is damaged and what to do", name, err)
		}
	}
	if err := os.Truncate(path, 2*int64(os.Getpagesize())); err != nil { // its two meta pages
		t.Fatal(err)
	}
	f, err := Open(path, Options{})
	if err == nil {
		f.Close()
		t.Fatalf("open of an fsm.db cut short: got no error")
	}
	if !strings.Contains(err.Error(), "cut short") || !strings.Contains(err.Error(), "-join") {
		t.Fatalf("open of an fsm.db cut short: %v, want it to say so and what to do", err)
	}
}
