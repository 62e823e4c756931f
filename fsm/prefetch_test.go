package fsm

import (
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// commitOnce opens the bbolt file at path with noFreelistSync, commits one write and
// closes it.
func commitOnce(t *testing.T, path string, noFreelistSync bool, key string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: noFreelistSync, FreelistType: bolt.FreelistMapType})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), make([]byte, 5000)) // an overflow page, freed by the next write
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// storesFreelist is what openDB reads of the file at path (ownBoltFile): whether the meta
// bbolt's open will use points to a stored freelist, and whether there is such a meta.
func storesFreelist(t *testing.T, path string) (stored, known bool) {
	t.Helper()
	m, found, err := ownBoltFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return found && m.freelist != boltNoFreelist, found
}

// openDB reads the meta page bbolt's open uses: the valid one with the higher txid.
func TestStoresFreelistReadsTheMetaBboltOpensWith(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	check := func(step string, wantStored, wantKnown bool) {
		t.Helper()
		if stored, known := storesFreelist(t, path); stored != wantStored || known != wantKnown {
			t.Fatalf("%s: storesFreelist = %v, %v; want %v, %v", step, stored, known, wantStored, wantKnown)
		}
	}
	check("missing file", false, false)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	check("empty file", false, false)
	if err := os.WriteFile(path, make([]byte, 16<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	check("zeros", false, false)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	commitOnce(t, path, false, "k1")
	check("committed with the freelist", true, true)
	commitOnce(t, path, true, "k2")
	check("last commit without the freelist", false, true)
	commitOnce(t, path, false, "k3")
	check("stored again", true, true)
	commitOnce(t, path, true, "k4")
	check("without it again (the other meta page)", false, true)

	// A torn newest meta: bbolt falls back to the other one, which stored the freelist.
	// (With bbolt 1.5 the newest is meta 0 after these commits, so storesFreelist also has
	// to guess where the second meta lies, as when a crash tore the first.)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	f := mustOpenFile(t, path)
	m0, _, ok0 := readBoltMeta(f, 0)
	m1, _, ok1 := readBoltMeta(f, int64(pageSize))
	if !ok0 || !ok1 {
		t.Fatalf("meta pages valid: %v, %v", ok0, ok1)
	}
	newest := 0
	if m1.txid > m0.txid {
		newest = pageSize
	}
	b[newest+boltPageHeader+40]++ // the high water mark: the checksum no longer matches
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	check("newest meta torn", true, true)
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("bbolt does not open the file with the torn meta either: %v", err)
	}
	_ = db.Close()
}

func mustOpenFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestReadThroughReadsTheWholeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	const size = 9<<20 + 123 // more than two of its reads
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := readThrough(path); n != size || err != nil {
		t.Fatalf("readThrough = %d, %v; want %d, nil", n, err, size)
	}
	if _, err := readThrough(path + ".missing"); err == nil {
		t.Fatal("readThrough of a missing file: no error")
	}
}
