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
	"sync/atomic"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/imnode/imnode/internal/writeback"
)

// A raft snapshot of this FSM is a reference, not a copy: fsm.db is durable and records
// the index it has applied, so the snapshot need only say "the state file, as of at least
// this index". Taking one costs the same at a thousand messages as at ten million, and
// raft's snapshot store holds a few dozen bytes per snapshot instead of the whole state.
// When raft must send the state to a follower (a new or wiped node, or one too far behind
// the log), node's snapshot store opens the reference as a consistent read transaction of
// fsm.db (OpenState) and streams that; the follower's FSM then skips every entry up to the
// index the stream holds.
var snapshotRefMagic = []byte("imnode-fsm-ref\x00\x01")

// SnapshotRefLen is the length of a reference snapshot: the magic and the applied index.
var SnapshotRefLen = len(snapshotRefMagic) + 8

// ParseSnapshotRef reports whether b is a reference snapshot and, if so, the FSM's applied
// index when it was taken: the state file must hold at least that index to stand for it.
func ParseSnapshotRef(b []byte) (applied uint64, ok bool) {
	if len(b) != SnapshotRefLen || !bytes.Equal(b[:len(snapshotRefMagic)], snapshotRefMagic) {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[len(snapshotRefMagic):]), true
}

// SnapshotRef is the reference snapshot of a state file that has applied index applied.
func SnapshotRef(applied uint64) []byte {
	b := append([]byte(nil), snapshotRefMagic...)
	return binary.BigEndian.AppendUint64(b, applied)
}

// Snapshot returns a reference snapshot of the current state (raft.FSM).
//
// The open group is committed first: raft may drop the log up to this snapshot's index, so
// the file must hold all of it before the reference says it does. The index recorded is
// the FSM's own, which may trail raft's snapshot index by entries that never reach the FSM
// (no-ops, configuration changes); they change no state.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.Flush()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	return refSnapshot(f.AppliedIndex()), nil
}

type refSnapshot uint64

// Persist writes the reference.
func (s refSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(SnapshotRef(uint64(s))); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release has nothing to release.
func (refSnapshot) Release() {}

// State is a consistent, read-only view of the whole state file, for sending it to a
// follower and for backups. Writes go on while it is open; Close it when done, since an
// open view keeps the pages it sees from being reused and Restore waits for it.
type State struct {
	tx      *bolt.Tx
	applied uint64
	open    *atomic.Int32 // the FSM's count of open States
	closed  sync.Once
}

// OpenState commits the open group and opens a view of the state file as of now.
func (f *FSM) OpenState() (*State, error) {
	// The view's file carries the freelist of the commit it sees. A commit that skipped
	// it (see openLocked) would make the node receiving the file rebuild it by reading all
	// of it, so one more commit stores it first.
	f.txMu.Lock()
	f.flushLocked()
	f.mu.RLock()
	err := f.storeFreelist()
	f.mu.RUnlock()
	f.txMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	f.states.Add(1)
	tx, err := f.db.Begin(false)
	if err != nil {
		f.states.Add(-1)
		return nil, fmt.Errorf("open state: %w", err)
	}
	return &State{tx: tx, applied: appliedIn(tx.Bucket(bktMeta)), open: &f.states}, nil
}

// Applied is the last index the view holds.
func (s *State) Applied() uint64 { return s.applied }

// Size is the number of bytes WriteTo writes.
func (s *State) Size() int64 { return s.tx.Size() }

// WriteTo writes the view as a bbolt file, which Restore accepts.
func (s *State) WriteTo(w io.Writer) (int64, error) { return s.tx.WriteTo(w) }

// Close ends the view.
func (s *State) Close() error {
	s.closed.Do(func() { s.open.Add(-1) })
	return s.tx.Rollback()
}

func restoreTempPath(path string) string { return path + ".restore" }

// Restore replaces the state with a snapshot (raft.FSM): a state file that a leader
// streamed (see OpenState), the token of such a file already received (StateFileToken), or a
// reference, which the file must already cover.
//
// A stream is written to a file beside the database and synced, checked to be a state
// file (StateFileApplied), and only then renamed over the database, so a crash at any point leaves
// either the old file or the new one. Reads wait for the swap and then see the new state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	head := make([]byte, SnapshotRefLen)
	n, err := io.ReadFull(rc, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("restore: %w", err)
	}
	if ref, ok := ParseSnapshotRef(head[:n]); ok {
		return f.restoreRef(ref)
	}
	if bytes.HasPrefix(head[:n], stateFileMagic) {
		rest, err := io.ReadAll(io.LimitReader(rc, 4096))
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return f.restoreFile(string(head[len(stateFileMagic):n]) + string(rest))
	}
	tmp := restoreTempPath(f.path)
	if err := writeSynced(tmp, io.MultiReader(bytes.NewReader(head[:n]), rc)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	if _, err := StateFileApplied(tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: snapshot is not a usable database: %w", err)
	}
	if err := f.swapIn(tmp); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	f.log.Info("state restored", "from", "stream", "applied", f.AppliedIndex())
	return nil
}

// A state file token is what node's snapshot store gives Restore for a state that a leader
// sent and that it received into a file of its own: the magic, then the file's path. Restore
// moves that file into place, where a stream would be copied: a state of gigabytes is then
// written once on the receiving node, not three times (raft's snapshot file, a CRC read of
// it, the copy). A token is never taken from the network: the store keeps what it receives
// only as a reference or as a bbolt file, and Restore takes a token only for a file in its
// own directory tree.
var stateFileMagic = []byte("imnode-fsm-file\x01")

// StateFileToken is the token for the state file at path (see stateFileMagic).
func StateFileToken(path string) []byte {
	return append(append([]byte(nil), stateFileMagic...), path...)
}

// restoreFile replaces the state with the bbolt file at path, which it moves into place.
func (f *FSM) restoreFile(path string) error {
	dir, err := filepath.Abs(filepath.Dir(f.path))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if rel, err := filepath.Rel(dir, abs); err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("restore: state file %s is not under %s", path, dir)
	}
	if _, err := StateFileApplied(path); err != nil {
		return fmt.Errorf("restore: state file %s is not a usable database: %w", path, err)
	}
	if err := f.swapIn(path); err != nil {
		return err
	}
	syncDir(path)
	f.log.Info("state restored", "from", path, "applied", f.AppliedIndex())
	return nil
}

// swapIn renames the bbolt file at src over the state file and opens it. A crash at any
// point leaves either the old file or the new one.
func (f *FSM) swapIn(src string) error {
	// The new file replaces everything, but the open group must not outlive its file.
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
	if err := os.Rename(src, f.path); err != nil {
		return f.reopen(fmt.Errorf("restore: %w", err))
	}
	syncDir(f.path)
	return f.reopen(nil)
}

// StateFileApplied opens the bbolt file at path read-only and returns the last index its
// state holds: what a reference to it says. It is also how a file is checked to be a state
// (a whole bbolt file with the meta bucket, see checkBoltFile) before it replaces anything.
func StateFileApplied(path string) (uint64, error) {
	db, err := openBoltFile(path, &bolt.Options{ReadOnly: true}, false)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var applied uint64
	err = viewChecked(db, func(tx *bolt.Tx) error {
		if err := checkBuckets(tx); err != nil {
			return err
		}
		b := tx.Bucket(bktMeta)
		if b == nil {
			return errors.New("no meta bucket: not an imnode state file")
		}
		applied = appliedIn(b)
		return nil
	})
	return applied, err
}

// ErrStateBehindSnapshot is Restore's answer to a reference snapshot that this FSM's file
// does not cover: the file was lost or replaced by an older one, and a reference carries
// no state to restore from. The node must get the state from the leader (DESIGN.md).
var ErrStateBehindSnapshot = errors.New("fsm.db is behind the snapshot, which refers to it: the state is lost")

// restoreRef restores a reference snapshot: there is nothing to copy, only to check that
// the file holds what the reference stands for.
func (f *FSM) restoreRef(ref uint64) error {
	if applied := f.AppliedIndex(); applied < ref {
		return fmt.Errorf("restore: %w (fsm.db applied %d, snapshot refers to %d)", ErrStateBehindSnapshot, applied, ref)
	}
	return nil
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
	f.regs.clear()
	return cause
}

// writeSynced writes r to a new file at path and syncs it. The file can be the whole state,
// so its pages are sent to disk as it grows (see package writeback), not all at the end.
func writeSynced(path string, r io.Reader) error {
	return writeFileSynced(path, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// writeFileSynced creates the file at path, has write fill it (through writeback), and
// syncs it.
func writeFileSynced(path string, write func(io.Writer) error) error {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := write(writeback.NewWriter(file)); err != nil {
		_ = file.Close()
		return err
	}
	if err := file.Sync(); err != nil {
		_ = file.Close()
		return err
	}
	return file.Close()
}

// syncDir makes a rename to path durable.
func syncDir(path string) {
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Digest is a hash of the whole replicated state (not the applied index).
//
// It is SHA-256, in hex, over every bucket but meta (of which only the last command id,
// see batch.go), buckets and keys in byte order, each name, key and value length-prefixed. Two replicas that applied the same entries have the
// same digest even if one has applied more configuration entries or restarted more often.
func (f *FSM) Digest() (string, error) { return f.digest(true) }

// DataDigest is Digest without the idempotency records and the last command id: a hash of
// what the API shows (users, relations, groups, conversations, messages, read state). A
// command that fails with a business error leaves it as it was; it changes only those two,
// so that a retry with the same operationID gets the same answer.
func (f *FSM) DataDigest() (string, error) { return f.digest(false) }

func (f *FSM) digest(bookkeeping bool) (string, error) {
	h := sha256.New()
	err := f.view(func(r *txn) error {
		return r.tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if bytes.Equal(name, bktMeta) {
				// Not the applied index, but the last command id: later ids derive from it.
				if v := b.Get(keyLastID); v != nil && bookkeeping {
					h.Write([]byte{'I'})
					writeField(h, v)
				}
				return nil
			}
			if !bookkeeping && (bytes.Equal(name, bktIdemLog) || bytes.Equal(name, bktOldIdem) || bytes.Equal(name, bktOldIdemTime)) {
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
