package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// The idempotency index is saved beside fsm.db when the FSM closes, and the next open reads
// it instead of scanning idemlog. The scan reads every idemlog page, which lie scattered
// over the whole file: at 13.2 M records (a 6–8 GB fsm.db), 107–113 s for three nodes
// opening at once from one disk with a cold page cache, against 10.6–12.4 s to read this
// file (16 bytes a record, 211 MB) and build the maps.
//
// The file stands for exactly one state of fsm.db: it names the bbolt transaction that
// committed that state and the applied index, and is used only if the file still holds
// both. Any commit since (a node that ran on after a crash, a restored snapshot or backup)
// changes the transaction id, and the index is scanned as before. It is read once: open
// removes it, so a crash later never meets an old one.
const idemCheckpointMagic = "imidx\x00\x00\x01"

var idemCRC = crc64.MakeTable(crc64.ECMA)

// idemCheckpointPath is where the index of the fsm.db at path is saved.
func idemCheckpointPath(path string) string { return path + ".idem" }

// idemCheckpointHeader is what the file begins with, after the magic.
type idemCheckpointHeader struct {
	TxID, Applied, FP, Full uint64
}

// dbState returns the id of the transaction that committed db's current state and the
// applied index it records.
func dbState(db *bolt.DB) (txid, applied uint64, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		txid, applied = uint64(tx.ID()), appliedIn(tx.Bucket(bktMeta))
		return nil
	})
	return txid, applied, err
}

// save writes the index of db's committed state to path, through a synced temporary file
// and a rename, so that a crash leaves either the whole file or none. Nothing may apply
// meanwhile: the index must be the committed state's.
func (x *idemIndex) save(db *bolt.DB, path string) error {
	txid, applied, err := dbState(db)
	if err != nil {
		return err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	tmp := path + ".tmp"
	err = writeFileSynced(tmp, func(w io.Writer) error {
		return x.writeTo(w, idemCheckpointHeader{TxID: txid, Applied: applied, FP: uint64(len(x.fp)), Full: uint64(len(x.full))})
	})
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	syncDir(path)
	return nil
}

func (x *idemIndex) writeTo(f io.Writer, h idemCheckpointHeader) error {
	crc := crc64.New(idemCRC)
	w := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	var buf [IdemKeyLen + 8]byte
	w.WriteString(idemCheckpointMagic)
	if err := binary.Write(w, binary.BigEndian, h); err != nil {
		return err
	}
	for fp, t := range x.fp {
		binary.BigEndian.PutUint64(buf[:8], fp)
		binary.BigEndian.PutUint64(buf[8:16], uint64(t))
		w.Write(buf[:16])
	}
	for key, t := range x.full {
		copy(buf[:], key[:])
		binary.BigEndian.PutUint64(buf[IdemKeyLen:], uint64(t))
		w.Write(buf[:])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := f.Write(binary.BigEndian.AppendUint64(nil, crc.Sum64()))
	return err
}

// errStaleCheckpoint is a saved index that is not the one of the file as it is now.
var errStaleCheckpoint = errors.New("saved idempotency index does not match fsm.db")

// loadCheckpoint replaces the index with the one saved at path for db's current state, and
// removes the file whatever it held. It returns an error, and leaves the index as it was,
// when there is no such file or it is not db's (the caller then scans).
func (x *idemIndex) loadCheckpoint(db *bolt.DB, path string) error {
	_ = os.Remove(path + ".tmp") // a save that crashed before its rename
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer f.Close()
	txid, applied, err := dbState(db)
	if err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	crc := crc64.New(idemCRC)
	var buf [IdemKeyLen + 8]byte
	read := func(b []byte) error { // reads b whole and adds it to the checksum
		_, err := io.ReadFull(r, b)
		crc.Write(b)
		return err
	}
	var head [len(idemCheckpointMagic) + 32]byte
	if err := read(head[:]); err != nil {
		return err
	}
	if string(head[:len(idemCheckpointMagic)]) != idemCheckpointMagic {
		return fmt.Errorf("%w: not an index file", errStaleCheckpoint)
	}
	var h idemCheckpointHeader
	if err := binary.Read(bytes.NewReader(head[len(idemCheckpointMagic):]), binary.BigEndian, &h); err != nil {
		return err
	}
	if h.TxID != txid || h.Applied != applied {
		return fmt.Errorf("%w: saved at tx %d, index %d; the file is at tx %d, index %d",
			errStaleCheckpoint, h.TxID, h.Applied, txid, applied)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if want := int64(len(head)) + int64(h.FP)*16 + int64(h.Full)*(IdemKeyLen+8) + 8; st.Size() != want {
		return fmt.Errorf("%w: %d bytes, the header says %d", errStaleCheckpoint, st.Size(), want)
	}
	fresh := idemIndex{fp: make(map[uint64]int64, h.FP), full: make(map[[IdemKeyLen]byte]int64, h.Full)}
	for range h.FP {
		if err := read(buf[:16]); err != nil {
			return err
		}
		fresh.fp[binary.BigEndian.Uint64(buf[:8])] = int64(binary.BigEndian.Uint64(buf[8:16]))
	}
	for range h.Full {
		if err := read(buf[:]); err != nil {
			return err
		}
		fresh.full[[IdemKeyLen]byte(buf[:IdemKeyLen])] = int64(binary.BigEndian.Uint64(buf[IdemKeyLen:]))
	}
	sum := crc.Sum64() // of everything before the checksum itself
	if _, err := io.ReadFull(r, buf[:8]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(buf[:8]) != sum {
		return fmt.Errorf("%w: checksum mismatch", errStaleCheckpoint)
	}
	x.mu.Lock()
	x.fp, x.full = fresh.fp, fresh.full
	x.mu.Unlock()
	return nil
}
