package fsm

import (
	"bytes"
	"encoding/binary"
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

	// Pages that only a walk of the whole file reaches: msglog's root, once it has pages of
	// its own, zeroed (bbolt's Tx.Check found that), counting more elements than it holds,
	// or naming itself as its first child (bbolt faulted on those two). The meta and users
	// buckets, which the cheaper checks read, are fine.
	big := newHarness(t)
	populate(big)
	for i := 0; i < 300; i++ {
		big.send("alice", "bob", SessionSingle, strings.Repeat("x", 200))
	}
	state = mustState(t, big.f)
	var msgRoot int
	if err := big.f.view(func(r *txn) error {
		msgRoot = int(r.tx.Bucket(bktMsgLog).Root())
		return nil
	}); err != nil || msgRoot == 0 {
		t.Fatalf("msglog root page %d (%v): want a page of its own", msgRoot, err)
	}
	pageSize := os.Getpagesize()
	page := func(b []byte) []byte { return b[msgRoot*pageSize : (msgRoot+1)*pageSize] }
	if flags := binary.LittleEndian.Uint16(page(state)[8:]); flags != boltBranchPage {
		t.Fatalf("msglog root page has flags %#x, want a branch page", flags)
	}
	for name, change := range map[string]func(p []byte){
		"zeroed":                           func(p []byte) { clear(p) },
		"counting past its end":            func(p []byte) { binary.LittleEndian.PutUint16(p[10:], 60000) },
		"naming itself as its first child": func(p []byte) { binary.LittleEndian.PutUint64(p[boltPageHeader+8:], uint64(msgRoot)) },
	} {
		bad := bytes.Clone(state)
		change(page(bad))
		if _, err := StateFileApplied(write("cheap.backup", bad)); err != nil {
			t.Fatalf("the cheaper checks already refuse msglog's root page %s (%v): the case tests nothing", name, err)
		}
		if err := RestoreBackup(write("bad.backup", bad), filepath.Join(dir, "bad.fsm.db")); err == nil {
			t.Fatalf("backup with msglog's root page %s: restored, want it refused", name)
		} else {
			t.Logf("backup with msglog's root page %s: %v", name, err)
		}
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

// FuzzRestoreBackup damages a backup and hands it to `imnode restore` (RestoreBackup) and to
// the check of a received state (StateFileApplied). Each refuses it with an error or takes
// it, and neither crashes, faults or hangs; a backup that restore takes opens as an FSM and
// reads whole (Digest). bbolt keeps no checksums of its pages, so a change inside a key or
// a value, or on a free page, may well be taken: the promise is no crash, not detection.
// The input overwrites the backup at off with patch, then keeps cut/65536 of it (all of
// it for 0). The seeds garble the flags, the element count and the first element of every
// page.
func FuzzRestoreBackup(f *testing.F) {
	src := newHarness(f)
	populate(src)
	for i := 0; i < 300; i++ { // msglog gets pages of its own, with a branch page above them
		src.send("alice", "bob", SessionSingle, strings.Repeat("x", 200))
	}
	state := mustState(f, src.f)
	pageSize := os.Getpagesize()
	for off := 0; off < len(state); off += pageSize {
		f.Add(uint32(off+8), []byte{0xff, 0xff}, uint16(0))                          // flags
		f.Add(uint32(off+10), []byte{0xff, 0xff}, uint16(0))                         // element count
		f.Add(uint32(off+boltPageHeader), []byte{0xff, 0xff, 0xff, 0x7f}, uint16(0)) // first element
		f.Add(uint32(off+boltPageHeader+8), []byte{2}, uint16(0))                    // a child's id
	}
	f.Add(uint32(0), []byte{}, uint16(1<<15))
	f.Fuzz(func(t *testing.T, off uint32, patch []byte, cut uint16) {
		bad := bytes.Clone(state)
		if o := int(off % uint32(len(bad))); len(patch) > 0 {
			copy(bad[o:], patch)
		}
		if cut > 0 {
			bad = bad[:len(bad)*int(cut)>>16]
		}
		dir := t.TempDir()
		path, dst := filepath.Join(dir, "backup"), filepath.Join(dir, "fsm.db")
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = StateFileApplied(path)
		if err := RestoreBackup(path, dst); err != nil {
			return
		}
		restored, err := Open(dst, Options{})
		if err != nil {
			return
		}
		defer restored.Close()
		_, _ = restored.Digest()
	})
}
