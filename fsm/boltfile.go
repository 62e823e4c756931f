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
// It checks the size the last commit needs and the two pages that bbolt's open and every
// read begin with, the root and the freelist (see boltWalker); walkBoltFile checks the rest.
// It returns the meta that bbolt's open will use (see newestBoltMeta).
func checkBoltFile(path string) (boltMeta, error) {
	w, err := newBoltWalker(path)
	if err != nil {
		return w.meta, err
	}
	defer w.f.Close()
	return w.meta, w.check(false)
}

// walkBoltFile checks what checkBoltFile does and every other page the file's root reaches,
// each read once with ReadAt, never through a mapping (see boltWalker): one read of the
// whole file.
func walkBoltFile(path string) error {
	w, err := newBoltWalker(path)
	if err != nil {
		return err
	}
	defer w.f.Close()
	return w.check(true)
}

// bbolt's pages, as go.etcd.io/bbolt/internal/common lays them out. A page begins with a
// 16-byte header: its id (8 bytes), flags (2), element count (2) and overflow (4: the pages
// that follow it as part of it). Then come count elements of 16 bytes: on a branch page the
// position of its key relative to the element (4), the key's size (4) and the child page's
// id (8); on a leaf page flags (4), position (4), key size (4) and value size (4), the value
// following the key. A leaf element flagged as a bucket holds the bucket's root page id and
// a sequence (8 each); a root of 0 means the bucket's page follows inline in that value. A
// freelist page holds count page ids of 8 bytes, or, with count 0xFFFF, the count in its
// first 8 bytes and the ids after it.
const (
	boltBranchPage   = 0x01
	boltLeafPage     = 0x02
	boltFreelistPage = 0x10
	boltBucketLeaf   = 0x01
	boltElementSize  = 16
	boltBucketHeader = 16
	// boltMaxSpan bounds the bytes of one page with its overflow that a check reads into
	// memory: imnode's largest values are far smaller.
	boltMaxSpan = 256 << 20
	// boltMaxDepth bounds the nesting of pages and buckets, which bbolt keeps to a handful.
	boltMaxDepth = 64
)

// boltWalker checks a bbolt file's pages before bbolt reads them. bbolt reads its pages
// through a mapping and believes what they say: a freelist page whose count runs past its
// end, or a leaf whose element count or key position does, made `imnode restore` die of a
// fault that no recover catches, in bbolt's open or in Tx.Check. The walker reads every page
// with ReadAt and checks that it lies in the file, names itself, is of the type its parent
// expects, is reached once and not also free, and that its elements, keys, values and
// inline buckets lie inside it. bbolt's Tx.Check then finds what the walker does not look
// for (key order, pages neither reached nor free) without reading outside the file.
type boltWalker struct {
	f        *os.File
	meta     boltMeta
	pageSize uint64
	// seen marks the pages found so far (check with descend): in use, free, or the two metas.
	seen []uint64
}

func newBoltWalker(path string) (*boltWalker, error) {
	f, err := os.Open(path)
	if err != nil {
		return &boltWalker{}, err
	}
	w := &boltWalker{f: f}
	m, pageSize, ok := newestBoltMeta(f)
	st, err := f.Stat()
	switch {
	case err != nil:
	case !ok:
		err = errNoBoltMeta
	case pageSize < 1024 || pageSize > 1<<20 || pageSize&(pageSize-1) != 0:
		err = fmt.Errorf("corrupt: page size %d", pageSize)
	case uint64(st.Size())/uint64(pageSize) < m.hwm:
		err = fmt.Errorf("cut short: %d bytes, where its last commit needs %d", st.Size(), m.hwm*uint64(pageSize))
	}
	if err != nil {
		f.Close()
		return &boltWalker{meta: m}, err
	}
	w.meta, w.pageSize = m, uint64(pageSize)
	return w, nil
}

// check checks the freelist and the root page, the pages every open and read begins with,
// and with descend every page the root reaches and that none is reached twice or is both
// reached and free.
func (w *boltWalker) check(descend bool) error {
	if descend {
		w.seen = make([]uint64, (w.meta.hwm+63)/64)
		w.mark(0, 1) // the metas
	}
	if w.meta.freelist != boltNoFreelist {
		fl, err := w.page("freelist", w.meta.freelist, boltFreelistPage)
		if err != nil {
			return err
		}
		if err := w.freelist(fl); err != nil {
			return err
		}
	}
	root, err := w.page("root", w.meta.root, boltBranchPage|boltLeafPage)
	if err != nil {
		return err
	}
	return w.elements(root, w.meta.root, false, 0, descend)
}

// mark marks pages first to last as found and reports whether one already was.
func (w *boltWalker) mark(first, last uint64) (again bool) {
	for id := first; id <= last; id++ {
		word, bit := id/64, uint64(1)<<(id%64)
		again = again || w.seen[word]&bit != 0
		w.seen[word] |= bit
	}
	return again
}

// page reads page id, and its overflow after checking its header: its type is exactly one
// of flags (bbolt compares a page's flags whole).
func (w *boltWalker) page(what string, id uint64, flags uint16) ([]byte, error) {
	if id < 2 || id >= w.meta.hwm {
		return nil, fmt.Errorf("corrupt: %s page %d outside the file's %d pages", what, id, w.meta.hwm)
	}
	p := make([]byte, w.pageSize) // with its header; the overflow, if any, is read below
	if _, err := w.f.ReadAt(p, int64(id*w.pageSize)); err != nil {
		return nil, fmt.Errorf("corrupt: read %s page %d: %w", what, id, err)
	}
	got, gotFlags, overflow := binary.LittleEndian.Uint64(p[0:]), binary.LittleEndian.Uint16(p[8:]), uint64(binary.LittleEndian.Uint32(p[12:]))
	if got != id || gotFlags&flags == 0 || gotFlags&(gotFlags-1) != 0 || id+overflow >= w.meta.hwm || (overflow+1)*w.pageSize > boltMaxSpan {
		return nil, fmt.Errorf("corrupt: %s page %d reads as page %d with flags %#x and %d overflow pages", what, id, got, gotFlags, overflow)
	}
	if w.seen != nil && w.mark(id, id+overflow) {
		return nil, fmt.Errorf("corrupt: %s page %d is reached twice, or is also free", what, id)
	}
	if overflow > 0 {
		p = append(p, make([]byte, overflow*w.pageSize)...)
		if _, err := w.f.ReadAt(p[w.pageSize:], int64((id+1)*w.pageSize)); err != nil {
			return nil, fmt.Errorf("corrupt: read %s page %d: %w", what, id, err)
		}
	}
	return p, nil
}

// freelist checks that the ids of freelist page p fit in it and lie in the file, and marks
// them (walk).
func (w *boltWalker) freelist(p []byte) error {
	count, from := uint64(binary.LittleEndian.Uint16(p[10:])), uint64(boltPageHeader)
	if count == 0xFFFF {
		count, from = binary.LittleEndian.Uint64(p[boltPageHeader:]), boltPageHeader+8
	}
	if count > (uint64(len(p))-from)/8 {
		return fmt.Errorf("corrupt: freelist page %d counts %d ids, more than it holds", w.meta.freelist, count)
	}
	for i := uint64(0); i < count; i++ {
		id := binary.LittleEndian.Uint64(p[from+8*i:])
		if id < 2 || id >= w.meta.hwm {
			return fmt.Errorf("corrupt: freelist page %d lists page %d, outside the file's %d pages", w.meta.freelist, id, w.meta.hwm)
		}
		if w.seen != nil && w.mark(id, id) {
			return fmt.Errorf("corrupt: freelist page %d lists page %d twice", w.meta.freelist, id)
		}
	}
	return nil
}

// tree checks page id and every page below it.
func (w *boltWalker) tree(what string, id uint64, depth int) error {
	p, err := w.page(what, id, boltBranchPage|boltLeafPage)
	if err != nil {
		return err
	}
	return w.elements(p, id, false, depth, true)
}

// elements checks that the elements of page p (with inline, a bucket's page inline in page
// id) and the keys and values they point to lie inside it, and with descend the pages and
// buckets below it. A bucket inline in p is checked either way: it is part of p.
func (w *boltWalker) elements(p []byte, id uint64, inline bool, depth int, descend bool) error {
	where := fmt.Sprintf("page %d", id) // the walk's time is its reads
	if inline {
		where += "'s inline bucket"
	}
	if depth > boltMaxDepth {
		return fmt.Errorf("corrupt: %s lies %d pages and buckets deep", where, depth)
	}
	if len(p) < boltPageHeader {
		return fmt.Errorf("corrupt: %s has %d bytes", where, len(p))
	}
	flags, count := binary.LittleEndian.Uint16(p[8:]), uint64(binary.LittleEndian.Uint16(p[10:]))
	if flags != boltBranchPage && flags != boltLeafPage {
		return fmt.Errorf("corrupt: %s has flags %#x, neither a branch nor a leaf", where, flags)
	}
	branch := flags == boltBranchPage
	if end := boltPageHeader + count*boltElementSize; end > uint64(len(p)) || (branch && count == 0) {
		return fmt.Errorf("corrupt: %s counts %d elements, which its %d bytes cannot hold", where, count, len(p))
	}
	for i := uint64(0); i < count; i++ {
		e := boltPageHeader + i*boltElementSize
		el := p[e:]
		if branch {
			pos, ksize, child := uint64(binary.LittleEndian.Uint32(el[0:])), uint64(binary.LittleEndian.Uint32(el[4:])), binary.LittleEndian.Uint64(el[8:])
			if e+pos+ksize > uint64(len(p)) {
				return fmt.Errorf("corrupt: %s element %d's key lies outside it", where, i)
			}
			if descend {
				if err := w.tree("branch", child, depth+1); err != nil {
					return err
				}
			}
			continue
		}
		eflags, pos := binary.LittleEndian.Uint32(el[0:]), uint64(binary.LittleEndian.Uint32(el[4:]))
		ksize, vsize := uint64(binary.LittleEndian.Uint32(el[8:])), uint64(binary.LittleEndian.Uint32(el[12:]))
		if e+pos+ksize+vsize > uint64(len(p)) {
			return fmt.Errorf("corrupt: %s element %d's key or value lies outside it", where, i)
		}
		if eflags&boltBucketLeaf == 0 {
			continue
		}
		v := p[e+pos+ksize : e+pos+ksize+vsize]
		if len(v) < boltBucketHeader {
			return fmt.Errorf("corrupt: %s element %d is a bucket of %d bytes", where, i, len(v))
		}
		root := binary.LittleEndian.Uint64(v)
		switch {
		case root == 0:
			if err := w.elements(v[boltBucketHeader:], id, true, depth+1, descend); err != nil {
				return err
			}
		case descend:
			if err := w.tree("bucket root", root, depth+1); err != nil {
				return err
			}
		}
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
		return m, true, damaged(path, err)
	}
	return m, true, nil
}

// damaged is the error for a node's own file that cannot be used: it names the file, says
// what is wrong and what an operator can do.
func damaged(path string, err error) error {
	return fmt.Errorf("%s is damaged (%w): move the data dir away and start the node again with -join "+
		"(the leader sends it the state), or restore it from a backup", path, err)
}

// openBoltFile opens a bbolt file that this node did not write itself (a received state, a
// backup) after checkBoltFile, or walkBoltFile with walk, and turns a panic of bbolt's open
// on a corrupt page into an error. The file bbolt opened is then closed, which releases its
// lock (the mapping, if bbolt made one, stays until the process ends).
func openBoltFile(path string, opts *bolt.Options, walk bool) (db *bolt.DB, err error) {
	check := func(path string) error { _, err := checkBoltFile(path); return err }
	if walk {
		check = walkBoltFile
	}
	if err := check(path); err != nil {
		return nil, err
	}
	var opened *os.File
	o := *opts
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		opened = f
		return f, err
	}
	defer func() {
		if p := recover(); p != nil {
			if opened != nil {
				opened.Close()
			}
			db, err = nil, fmt.Errorf("corrupt: %v", p)
		}
	}()
	return bolt.Open(path, 0o600, &o)
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
