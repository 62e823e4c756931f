package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// MaxPrunePerCommand bounds the records one PruneIdempotency deletes, so one entry cannot
// hold the apply loop (and every node's) for long; the next periodic prune takes the rest.
const MaxPrunePerCommand = 50000

// timeKey encodes a Unix-nanosecond time so that byte order is numeric order, negative
// times included (the sign bit is flipped).
func timeKey(t int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t)^(1<<63))
}

func readIdem(r *txn, key []byte) (*Result, bool, error) {
	v := r.idem.Get(key)
	if v == nil {
		return nil, false, nil
	}
	if len(v) < 8 {
		return nil, false, fmt.Errorf("idempotency record %x is %d bytes", key, len(v))
	}
	res := &Result{}
	if err := DecodeValue(v[8:], res); err != nil {
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
	// Two separate slices: bbolt keeps what Put is given until the commit, so the value
	// and the time key must not share a backing array.
	tk := timeKey(w.now)
	val := append(append(make([]byte, 0, len(tk)+len(enc)), tk...), enc...)
	if err := w.idem.Put(key, val); err != nil {
		return err
	}
	return w.idemTime.Put(append(append(make([]byte, 0, len(tk)+len(key)), tk...), key...), []byte{})
}

// pruneIdempotency deletes, oldest first, the records applied before c.Before.
func (w *txn) pruneIdempotency(c *PruneIdempotency) (*Result, error) {
	limit := timeKey(c.Before)
	var keys [][]byte
	cur := w.idemTime.Cursor()
	for k, _ := cur.First(); k != nil && len(keys) < MaxPrunePerCommand; k, _ = cur.Next() {
		if len(k) < 8 || bytes.Compare(k[:8], limit) >= 0 {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := w.idemTime.Delete(k); err != nil {
			return nil, err
		}
		// A key has one time entry at most: a record is only written when there is none.
		if err := w.idem.Delete(k[8:]); err != nil {
			return nil, err
		}
	}
	return &Result{}, nil
}

// IdempotentResult returns the stored result for an idempotency key, if any. Replayed is
// set on it, as on the result of a replayed command.
func (f *FSM) IdempotentResult(key []byte) (*Result, bool, error) {
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
