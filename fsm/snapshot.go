package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Snapshot returns a snapshot of the current state (raft.FSM).
//
// It only opens a read transaction, which is cheap and pins a consistent view of the file;
// Persist copies that view while Apply goes on. The open group is committed first: raft
// may drop the log up to this snapshot's index, so the file must hold all of it.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.Flush()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &snapshot{tx: tx}, nil
}

type snapshot struct {
	mu sync.Mutex
	tx *bolt.Tx // nil once persisted or released
}

// Persist streams the whole bbolt file as of the snapshot into sink.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tx == nil {
		_ = sink.Cancel()
		return errors.New("snapshot already released")
	}
	_, err := s.tx.WriteTo(sink)
	_ = s.tx.Rollback()
	s.tx = nil
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release ends the read transaction if Persist did not.
func (s *snapshot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tx != nil {
		_ = s.tx.Rollback()
		s.tx = nil
	}
}

func restoreTempPath(path string) string { return path + ".restore" }

// Restore replaces the state with a snapshot (raft.FSM).
//
// The stream is written to a file beside the database and synced, checked to open as a
// bbolt file, and only then renamed over the database, so a crash at any point leaves
// either the old file or the new one. Reads wait for the swap and then see the new state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := restoreTempPath(f.path)
	if err := writeSynced(tmp, rc); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	if err := checkBolt(tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: snapshot is not a usable database: %w", err)
	}

	// The snapshot replaces everything, but the open group must not outlive its file.
	f.Flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db != nil {
		// Close waits for open read transactions, a Persist in progress included.
		if err := f.db.Close(); err != nil {
			return fmt.Errorf("restore: close current database: %w", err)
		}
		f.db = nil
	}
	if err := os.Rename(tmp, f.path); err != nil {
		_ = os.Remove(tmp)
		return f.reopen(fmt.Errorf("restore: %w", err))
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		_ = d.Sync() // make the rename durable
		_ = d.Close()
	}
	return f.reopen(nil)
}

// reopen opens f.path again (the restored file, or the old one after a failed rename) and
// returns cause, or the open error if there is no cause.
func (f *FSM) reopen(cause error) error {
	db, applied, err := f.openDB(f.path)
	if err != nil {
		if cause != nil {
			return fmt.Errorf("%w (and reopening failed: %v)", cause, err)
		}
		return fmt.Errorf("restore: %w", err)
	}
	f.db = db
	f.setApplied(applied)
	return cause
}

func writeSynced(path string, r io.Reader) error {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(file, r); err != nil {
		_ = file.Close()
		return err
	}
	if err := file.Sync(); err != nil {
		_ = file.Close()
		return err
	}
	return file.Close()
}

func checkBolt(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	return db.Close()
}

// Digest is a hash of the whole replicated state (not the applied index).
//
// It is SHA-256, in hex, over every bucket but meta, buckets and keys in byte order, each
// name, key and value length-prefixed. Two replicas that applied the same entries have the
// same digest even if one has applied more configuration entries or restarted more often.
func (f *FSM) Digest() (string, error) {
	h := sha256.New()
	err := f.view(func(r *txn) error {
		return r.tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if bytes.Equal(name, bktMeta) {
				return nil
			}
			h.Write([]byte{'B'}) // tags keep a bucket name from reading as a key
			writeField(h, name)
			return b.ForEach(func(k, v []byte) error {
				h.Write([]byte{'K'})
				writeField(h, k)
				writeField(h, v)
				return nil
			})
		})
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeField(h hash.Hash, b []byte) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
	h.Write(b)
}
