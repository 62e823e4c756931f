package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
)

// bbolt's meta page, as go.etcd.io/bbolt/internal/common lays it out: a 16-byte page
// header, then magic, version, page size and flags (4 bytes each), the root bucket (its
// page id, then a sequence: 16), the freelist's page id, the high water mark (the pages the
// file holds), the txid and an FNV-64a checksum of the fields before it (8 bytes each).
const (
	boltPageHeader   = 16
	boltMetaSize     = 64
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltNoFreelist   = ^uint64(0)
	boltChecksumFrom = 56 // the checksum's offset in the meta, and the length it covers
)

// boltMeta is what this package reads of a meta page.
type boltMeta struct {
	root, freelist, hwm, txid uint64
}

// readBoltMeta returns the meta at offset off of f and the page size it records, and false
// if it is not a valid one (wrong magic or version, bad checksum, short file).
func readBoltMeta(f *os.File, off int64) (boltMeta, uint32, bool) {
	var b [boltPageHeader + boltMetaSize]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return boltMeta{}, 0, false
	}
	m := b[boltPageHeader:]
	h := fnv.New64a()
	_, _ = h.Write(m[:boltChecksumFrom])
	if binary.LittleEndian.Uint32(m[0:]) != boltMagic || binary.LittleEndian.Uint32(m[4:]) != boltVersion ||
		binary.LittleEndian.Uint64(m[boltChecksumFrom:]) != h.Sum64() {
		return boltMeta{}, 0, false
	}
	return boltMeta{
		root:     binary.LittleEndian.Uint64(m[16:]),
		freelist: binary.LittleEndian.Uint64(m[32:]),
		hwm:      binary.LittleEndian.Uint64(m[40:]),
		txid:     binary.LittleEndian.Uint64(m[48:]),
	}, binary.LittleEndian.Uint32(m[8:]), true
}

// newestBoltMeta returns the meta that bbolt's open uses, the valid one of the two with the
// higher txid, and the file's page size; false when neither is valid.
func newestBoltMeta(f *os.File) (boltMeta, uint32, bool) {
	m0, pageSize, ok0 := readBoltMeta(f, 0)
	if !ok0 {
		// The second meta lies one page in. With the first torn, this guesses the OS's page
		// size where bbolt searches further; a wrong guess only makes the caller unsure.
		pageSize = uint32(os.Getpagesize())
	}
	m1, _, ok1 := readBoltMeta(f, int64(pageSize))
	switch {
	case ok0 && (!ok1 || m0.txid >= m1.txid):
		return m0, pageSize, true
	case ok1:
		return m1, pageSize, true
	}
	return boltMeta{}, 0, false
}

// checkBoltFile reports why the file at path cannot be a whole bbolt file, before bbolt
// maps it. bbolt trusts its meta page and reads the pages it names straight from the
// mapping: `imnode restore` of a backup cut to half its size died of a SIGSEGV (no recover
// catches that), and of one cut to a tenth panicked on a freelist page of zeros.
// It returns the meta that bbolt's open will use (see newestBoltMeta).
func checkBoltFile(path string) (boltMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return boltMeta{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return boltMeta{}, err
	}
	m, pageSize, ok := newestBoltMeta(f)
	if !ok {
		return boltMeta{}, errNoBoltMeta
	}
	if need := int64(m.hwm) * int64(pageSize); st.Size() < need {
		return m, fmt.Errorf("cut short: %d bytes, where its last commit needs %d", st.Size(), need)
	}
	if err := checkBoltPage(f, m, pageSize, "root", m.root, boltBranchPage|boltLeafPage); err != nil {
		return m, err
	}
	if m.freelist != boltNoFreelist {
		return m, checkBoltPage(f, m, pageSize, "freelist", m.freelist, boltFreelistPage)
	}
	return m, nil
}

// bbolt's page header: the page id (8 bytes), flags (2), the element count (2) and the
// overflow (4: the pages that follow it as part of it).
const (
	boltBranchPage   = 0x01
	boltLeafPage     = 0x02
	boltFreelistPage = 0x10
)

// checkBoltPage checks the header of the page that meta m names as its root or freelist:
// within the file, naming itself, of the expected type. bbolt's open reads the freelist
// page and panics on one that is not, and every read starts at the root.
func checkBoltPage(f *os.File, m boltMeta, pageSize uint32, what string, id uint64, flags uint16) error {
	if id < 2 || id >= m.hwm {
		return fmt.Errorf("corrupt: %s page %d outside the file's %d pages", what, id, m.hwm)
	}
	var h [boltPageHeader]byte
	if _, err := f.ReadAt(h[:], int64(id)*int64(pageSize)); err != nil {
		return fmt.Errorf("corrupt: read %s page %d: %w", what, id, err)
	}
	got, gotFlags, overflow := binary.LittleEndian.Uint64(h[0:]), binary.LittleEndian.Uint16(h[8:]), binary.LittleEndian.Uint32(h[12:])
	if got != id || gotFlags&flags == 0 || id+uint64(overflow) >= m.hwm {
		return fmt.Errorf("corrupt: %s page %d reads as page %d with flags %#x and %d overflow pages", what, id, got, gotFlags, overflow)
	}
	return nil
}

var errNoBoltMeta = errors.New("not a bbolt file: no valid meta page")

// CheckBoltFile is checkBoltFile for a node's own files before they are opened. A file cut
// short (a copy of a data dir that stopped, a damaged disk) made bbolt's open die of a
// SIGBUS; the error names the file, says what is wrong and what an operator can do. A file
// in which no valid meta page is found passes: bbolt creates a missing or empty one, looks
// further for the metas of a file with another page size, and says itself what is wrong
// with one it cannot read.
func CheckBoltFile(path string) error {
	_, _, err := ownBoltFile(path)
	return err
}

// ownBoltFile is CheckBoltFile that also returns the meta bbolt's open will use; found is
// false when there is none to read.
func ownBoltFile(path string) (m boltMeta, found bool, err error) {
	m, err = checkBoltFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNoBoltMeta):
		return boltMeta{}, false, nil
	case err != nil:
		return m, true, fmt.Errorf("%s is damaged (%w): move the data dir away and start the node again with -join "+
			"(the leader sends it the state), or restore it from a backup", path, err)
	}
	return m, true, nil
}

// openBoltFile opens a bbolt file that this node did not write itself (a received state, a
// backup) after checkBoltFile, and turns a panic of bbolt's open on a corrupt page into an
// error.
func openBoltFile(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	if _, err := checkBoltFile(path); err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("corrupt: %v", p)
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

// viewChecked runs fn in a read transaction of db and turns a panic on a corrupt page into
// an error.
func viewChecked(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt: %v", p)
		}
	}()
	return db.View(fn)
}
