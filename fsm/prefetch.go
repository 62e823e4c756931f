package fsm

import (
	"encoding/binary"
	"hash/fnv"
	"io"
	"os"
)

// Reading fsm.db through before a freelist rebuild.
//
// A file whose newest commit stored no freelist (a crash while the list was over
// storedFreelistLimit) makes bbolt's open rebuild the list: it visits every page of the
// file in tree order, so with a cold page cache each page is a read of its own, scattered
// over the whole file. A follower of the 13.9 M-message cluster (15 GB fsm.db) took 469 and
// 574 s to open that way. Reading the file once from start to end first runs at the disk's
// sequential speed, and the rebuild then reads memory: a 2.0 GB test file with 9 M keys
// opened in 41.9 s from a cold cache, and in 5.4 s of reading plus 1.0 s of opening; on
// that cluster, a follower killed with kill -9 (16.2 GB, page cache dropped) was ready in
// 64–71 s, against 456 s for the build before in the same session. A file larger than the
// page cache keeps only its last part cached, which still spares the rebuild those reads:
// with the test file's page cache limited by a memory cgroup to half the file, 66.6 s
// became 2.9 + 20.9 s; to a quarter, 95.2 s became 1.7 + 77.6 s.
// Files with a stored freelist (every clean stop, most crashes) are not read: their open
// reads two pages.

// bbolt's meta page, as go.etcd.io/bbolt/internal/common lays it out: a 16-byte page
// header, then magic, version, page size and flags (4 bytes each), the root bucket (16),
// the freelist's page id, the high water mark, the txid and an FNV-64a checksum of the
// fields before it (8 bytes each).
const (
	boltPageHeader   = 16
	boltMetaSize     = 64
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltNoFreelist   = ^uint64(0)
	boltChecksumFrom = 56 // the checksum's offset in the meta, and the length it covers
)

// boltMeta is what storesFreelist reads of a meta page.
type boltMeta struct {
	freelist, txid uint64
}

// readBoltMeta returns the meta at offset off of f, and false if it is not a valid one
// (wrong magic or version, bad checksum, short file).
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
	return boltMeta{freelist: binary.LittleEndian.Uint64(m[32:]), txid: binary.LittleEndian.Uint64(m[48:])},
		binary.LittleEndian.Uint32(m[8:]), true
}

// storesFreelist reports whether the meta that bbolt's open will use (the valid one of the
// two with the higher txid) points to a stored freelist. known is false when the file is
// missing, empty or not a bbolt file; then there is nothing to say before bbolt opens it.
func storesFreelist(path string) (stored, known bool) {
	f, err := os.Open(path)
	if err != nil {
		return false, false
	}
	defer f.Close()
	m0, pageSize, ok0 := readBoltMeta(f, 0)
	if !ok0 {
		// The second meta lies one page in. With the first torn, this guesses the OS's page
		// size where bbolt searches further; a wrong guess only skips the read-through.
		pageSize = uint32(os.Getpagesize())
	}
	m1, _, ok1 := readBoltMeta(f, int64(pageSize))
	switch {
	case ok0 && (!ok1 || m0.txid >= m1.txid):
		return m0.freelist != boltNoFreelist, true
	case ok1:
		return m1.freelist != boltNoFreelist, true
	}
	return false, false
}

// readThrough reads the file at path once, from start to end, and returns the bytes read.
func readThrough(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
