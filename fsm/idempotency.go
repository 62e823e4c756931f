package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// MaxPrunePerCommand bounds the records one PruneIdempotency deletes, so one entry cannot
// hold the apply loop (and every node's) for long; the leader proposes another while one
// removes this many (node.pruneIdempotency). The result's Pruned says how many went.
const MaxPrunePerCommand = 50000

// timeKey encodes a Unix-nanosecond time so that byte order is numeric order, negative
// times included (the sign bit is flipped).
func timeKey(t int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t)^(1<<63))
}

// idemIndex finds idempotency records: key -> the applied time of its record, which is
// stored in idemlog under timeKey(time) + key.
//
// The records are kept in time order so that a commit appends them at the end of the
// bucket: keyed by the random key itself, every record landed on a page of its own and a
// commit wrote about one more page per write request (BenchmarkApplySingleChats). The price
// is this index in memory, built from idemlog when the file is opened or restored and kept
// in step by Apply. It is derived from replicated state only, so every replica answers
// alike.
//
// To stay small (30–38 bytes of heap per record within the retention window, measured at
// 1 M and 10 M records) it maps the first 8 bytes of a key (keys are SHA-256 sums) to the
// time; the record found there must carry the whole key, so a key that only shares those
// bytes is not mistaken for another. A key whose 8 bytes are already taken goes to full,
// keyed by the whole key: every indexed key is in exactly one of the two maps.
type idemIndex struct {
	mu   sync.RWMutex
	fp   map[uint64]int64
	full map[[IdemKeyLen]byte]int64
}

func fingerprint(key []byte) uint64 { return binary.BigEndian.Uint64(key) }

// get returns the time of key's record, if key may have one: the caller checks that the
// record at that time carries key.
func (x *idemIndex) get(key []byte) (int64, bool) {
	if len(key) != IdemKeyLen {
		return 0, false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if t, ok := x.full[[IdemKeyLen]byte(key)]; ok {
		return t, true
	}
	t, ok := x.fp[fingerprint(key)]
	return t, ok
}

// put indexes a key that has no record yet.
func (x *idemIndex) put(key []byte, t int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.putLocked(key, t)
}

func (x *idemIndex) putLocked(key []byte, t int64) {
	if _, taken := x.fp[fingerprint(key)]; taken {
		x.full[[IdemKeyLen]byte(key)] = t
		return
	}
	x.fp[fingerprint(key)] = t
}

// len is how many keys the index holds.
func (x *idemIndex) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.fp) + len(x.full)
}

// delete forgets a key whose record is being deleted.
func (x *idemIndex) delete(key []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.full[[IdemKeyLen]byte(key)]; ok {
		delete(x.full, [IdemKeyLen]byte(key))
		return
	}
	delete(x.fp, fingerprint(key))
}

// idemLoadParts is how many goroutines read idemlog when the index is built. With a cold
// page cache the scan waits for one random read per page (41 s for 10 million records), and
// the disk serves several reads at once: random 4 KiB reads on this project's VM ran at
// 9,700/s from one reader, 20,000/s from 8 and 32,000/s from 32.
const idemLoadParts = 16

// idemLoadBatch is how many records a reader hands over at a time.
const idemLoadBatch = 4096

type idemRec struct {
	key [IdemKeyLen]byte
	t   int64
}

// load replaces the index with the records of db's idemlog. Readers scan disjoint ranges
// of its time-ordered keys in their own read transactions, and one goroutine indexes what
// they read. Which of two keys that share a fingerprint lands in fp does not matter (see
// idemIndex), so neither does the order the ranges arrive in.
func (x *idemIndex) load(db *bolt.DB) error {
	bounds, err := idemLoadBounds(db, idemLoadParts)
	if err != nil {
		return err
	}
	fresh := idemIndex{fp: make(map[uint64]int64), full: make(map[[IdemKeyLen]byte]int64)}
	batches := make(chan []idemRec, idemLoadParts)
	errs := make(chan error, len(bounds))
	var wg sync.WaitGroup
	for i, lo := range bounds {
		var hi []byte
		if i+1 < len(bounds) {
			hi = bounds[i+1]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.View(func(tx *bolt.Tx) error { return scanIdemRange(tx, lo, hi, batches) })
		}()
	}
	go func() {
		wg.Wait()
		close(batches)
	}()
	for b := range batches {
		for i := range b {
			fresh.putLocked(b[i].key[:], b[i].t)
		}
	}
	for range bounds {
		if err := <-errs; err != nil {
			return err
		}
	}
	x.mu.Lock()
	x.fp, x.full = fresh.fp, fresh.full
	x.mu.Unlock()
	return nil
}

// idemLoadBounds splits idemlog's time range into at most parts ranges of equal length and
// returns the key each range starts at (the first is nil: from the start).
func idemLoadBounds(db *bolt.DB, parts int) ([][]byte, error) {
	bounds := [][]byte{nil}
	err := db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktIdemLog).Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if len(first) < 8 || len(last) < 8 {
			return nil // empty, or a malformed key the scan reports
		}
		lo, hi := binary.BigEndian.Uint64(first), binary.BigEndian.Uint64(last)
		width := (hi-lo)/uint64(parts) + 1
		for i := uint64(1); i < uint64(parts) && i*width <= hi-lo; i++ {
			bounds = append(bounds, binary.BigEndian.AppendUint64(nil, lo+i*width))
		}
		return nil
	})
	return bounds, err
}

// scanIdemRange sends the records with lo <= key < hi (nil: no bound) in batches.
func scanIdemRange(tx *bolt.Tx, lo, hi []byte, out chan<- []idemRec) error {
	c := tx.Bucket(bktIdemLog).Cursor()
	k, _ := c.First()
	if lo != nil {
		k, _ = c.Seek(lo)
	}
	batch := make([]idemRec, 0, idemLoadBatch)
	for ; k != nil && (hi == nil || bytes.Compare(k, hi) < 0); k, _ = c.Next() {
		if len(k) != 8+IdemKeyLen {
			return fmt.Errorf("idempotency record key %x is %d bytes", k, len(k))
		}
		batch = append(batch, idemRec{key: [IdemKeyLen]byte(k[8:]), t: fromTimeKey(k[:8])})
		if len(batch) == idemLoadBatch {
			out <- batch
			batch = make([]idemRec, 0, idemLoadBatch)
		}
	}
	if len(batch) > 0 {
		out <- batch
	}
	return nil
}

// convertOldIdem moves the records of the key-ordered layout (files written before idemlog)
// into idemlog, the same way on every replica.
func convertOldIdem(tx *bolt.Tx) error {
	old := tx.Bucket(bktOldIdem)
	if old == nil {
		return nil
	}
	dst := tx.Bucket(bktIdemLog)
	err := old.ForEach(func(k, v []byte) error {
		if len(k) != IdemKeyLen || len(v) < 8 {
			return fmt.Errorf("old idempotency record %x is malformed", k)
		}
		return dst.Put(append(bytes.Clone(v[:8]), k...), bytes.Clone(v[8:]))
	})
	if err != nil {
		return err
	}
	if err := tx.DeleteBucket(bktOldIdem); err != nil {
		return err
	}
	if tx.Bucket(bktOldIdemTime) != nil {
		return tx.DeleteBucket(bktOldIdemTime)
	}
	return nil
}

func fromTimeKey(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func idemLogKey(t int64, key []byte) []byte {
	return append(timeKey(t), key...)
}

// readIdem returns the record for key. On a read transaction a record that Apply has
// written but not yet committed is not there yet: the request is then proposed, and Apply
// answers it from the record.
func readIdem(r *txn, key []byte) (*Result, bool, error) {
	t, ok := r.idx.get(key)
	if !ok {
		return nil, false, nil
	}
	v := r.idemLog.Get(idemLogKey(t, key))
	if v == nil {
		// Another key with the same first 8 bytes, or not committed yet.
		return nil, false, nil
	}
	res := &Result{}
	if err := DecodeValue(v, res); err != nil {
		return nil, false, fmt.Errorf("decode idempotency record %x: %w", key, err)
	}
	res.Replayed = true
	return res, true, nil
}

// idemPut records the first answer for key, failures included: a retry must get the same
// answer even if the state has changed since (the user registered meanwhile, say).
func (w *txn) idemPut(key []byte, r *Result) error {
	enc, err := EncodeValue(r)
	if err != nil {
		return err
	}
	if err := w.idemLog.Put(idemLogKey(w.now, key), enc); err != nil {
		return err
	}
	w.idx.put(key, w.now)
	return nil
}

// pruneIdempotency deletes, oldest first, the records applied before c.Before, at most
// c.Limit (see PruneIdempotency).
func (w *txn) pruneIdempotency(c *PruneIdempotency) (*Result, error) {
	until, limit := timeKey(c.Before), c.MaxRecords()
	var keys [][]byte
	cur := w.idemLog.Cursor()
	for k, _ := cur.First(); k != nil && len(keys) < limit; k, _ = cur.Next() {
		if bytes.Compare(k[:8], until) >= 0 {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := w.idemLog.Delete(k); err != nil {
			return nil, err
		}
		w.idx.delete(k[8:])
	}
	return &Result{Pruned: len(keys)}, nil
}

// IdempotentResult returns the stored result for an idempotency key, if any. Replayed is
// set on it, as on the result of a replayed command.
func (f *FSM) IdempotentResult(key []byte) (*Result, bool, error) {
	if _, ok := f.idem.get(key); !ok {
		// The in-memory index knows every record: most keys are new, and need no read
		// transaction to say so.
		return nil, false, nil
	}
	var (
		res *Result
		ok  bool
	)
	err := f.view(func(r *txn) error {
		var err error
		res, ok, err = readIdem(r, key)
		return err
	})
	return res, ok, err
}
