package fsm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A backup that is whole restores with its applied index reset; one that is cut short or
// corrupt is refused with the reason, and nothing is left at the destination.
func TestRestoreBackupChecksTheFile(t *testing.T) {
	src := newHarness(t)
	populate(src)
	state := mustState(t, src.f)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	for name, bad := range corruptStates(t, state) {
		dst := filepath.Join(dir, "bad.fsm.db")
		err := RestoreBackup(write("bad.backup", bad), dst)
		if err == nil || !strings.Contains(err.Error(), "not a whole imnode state file") {
			t.Fatalf("backup %s: got %v, want it refused as not a whole state file", name, err)
		}
		t.Logf("backup %s: %v", name, err)
		for _, p := range []string{dst, dst + ".restore-tmp"} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("backup %s: %s left behind (%v)", name, p, err)
			}
		}
	}

	// A page that only a walk of the whole file reaches: the root of msglog, once it has
	// pages of its own. The meta and users buckets, which the cheaper checks read, are fine.
	big := newHarness(t)
	populate(big)
	for i := 0; i < 300; i++ {
		big.send("alice", "bob", SessionSingle, strings.Repeat("x", 200))
	}
	state = mustState(t, big.f)
	var msgRoot uint64
	if err := big.f.view(func(r *txn) error {
		msgRoot = uint64(r.tx.Bucket(bktMsgLog).Root())
		return nil
	}); err != nil || msgRoot == 0 {
		t.Fatalf("msglog root page %d (%v): want a page of its own", msgRoot, err)
	}
	pageSize := os.Getpagesize()
	bad := bytes.Clone(state)
	clear(bad[int(msgRoot)*pageSize : int(msgRoot+1)*pageSize])
	if _, err := StateFileApplied(write("cheap.backup", bad)); err != nil {
		t.Fatalf("the cheaper checks already refuse a zeroed msglog root (%v): the case tests nothing", err)
	}
	if err := RestoreBackup(write("bad.backup", bad), filepath.Join(dir, "bad.fsm.db")); err == nil {
		t.Fatalf("backup with msglog's root page zeroed: restored, want it refused")
	} else {
		t.Logf("backup with msglog's root page zeroed: %v", err)
	}

	dst := filepath.Join(dir, "fsm.db")
	if err := RestoreBackup(write("good.backup", state), dst); err != nil {
		t.Fatalf("whole backup: %v", err)
	}
	if applied, err := StateFileApplied(dst); err != nil || applied != 0 {
		t.Fatalf("restored file: applied %d, %v; want 0", applied, err)
	}
	restored := mustOpen(t, dst, Options{})
	if got, want := mustDigest(t, restored), big.digest(); got != want {
		t.Fatalf("restored digest %s, want the backup's %s", got, want)
	}
}
