package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/internal/writeback"
)

// stateSnapshots is the raft snapshot store. It keeps what raft gives it in the inner store,
// which for the FSM's own snapshots is a reference of a few dozen bytes (see fsm.Snapshot),
// and when raft opens a reference to send it to a follower it streams a consistent view of
// fsm.db instead. A state a leader sends to this node is received into a file that the FSM
// then takes as its fsm.db, and stored as a reference too (see Create). A whole state file
// stored by an older version is opened as it is.
//
// So a snapshot costs no more at ten million messages than at one, and the state is copied
// only when a follower needs it. The view opened holds at least the reference's index; the
// follower's FSM then skips the entries it already holds as raft replays them.
type stateSnapshots struct {
	raft.SnapshotStore
	fsm *fsm.FSM
	// pins holds the log while a follower is sent the state; nil holds nothing.
	pins *logPins
	// dir is the data dir of a raft.FileSnapshotStore, "" for any other store.
	dir string
	// sendRate caps how fast the state is read for a follower, in bytes per second; 0: no cap.
	sendRate int64
	// received is the snapshot whose state was received last and is not yet restored.
	received atomic.Pointer[receivedState]
}

// Create creates a snapshot for raft to write. In a file store, a state a leader sends is
// received into a file of its own beside the snapshot (receivedStateName), and the snapshot
// itself is stored as a reference to it; when raft then restores the snapshot, the FSM
// moves that file into place as fsm.db (see Open). A state of gigabytes is so written once,
// where raft's store would write it, read it whole for its CRC, and the FSM copy it.
func (s *stateSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil || s.dir == "" {
		return sink, err
	}
	return &receivingSink{SnapshotSink: sink, store: s, path: receivedStatePath(s.dir, sink.ID()+".tmp")}, nil
}

// receivedStateName is the file in a stored snapshot's directory that holds the state a
// leader sent, until the FSM takes it; the snapshot's own state is a reference to it. The
// directory is raft.FileSnapshotStore's (file_snapshot.go: snapPath, tmpSuffix), which
// renames it from "<id>.tmp" to "<id>" when the sink is closed.
const receivedStateName = "state.db"

// receivedStatePath is where the state of snapshot dirName (its ID, or the ID and ".tmp"
// while raft writes it) is received.
func receivedStatePath(dir, dirName string) string {
	return filepath.Join(dir, "snapshots", dirName, receivedStateName)
}

// receivingSink is a file store's sink that tells an FSM reference (what this node's own
// snapshots write) from a state (what a leader sends) by its first bytes. A reference goes
// to the store as it is; a state goes into the file at path, sent to disk as it grows (a
// writeback.Writer: left dirty, gigabytes would be flushed in one burst that stalls every
// other fsync on the disk), and on Close is checked to be a state file and stored as a
// reference to the index it holds.
type receivingSink struct {
	raft.SnapshotSink
	store *stateSnapshots
	path  string
	head  []byte // the bytes written, while they could still be a reference
	f     *os.File
	w     *writeback.Writer
	err   error
}

func (s *receivingSink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil {
		if len(s.head)+len(p) <= fsm.SnapshotRefLen {
			s.head = append(s.head, p...)
			return len(p), nil
		}
		f, err := os.OpenFile(s.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			s.err = err
			return 0, err
		}
		s.f, s.w = f, writeback.NewWriter(f)
		if _, err := s.w.Write(s.head); err != nil {
			s.err = err
			return 0, err
		}
		s.head = nil
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// Close stores the snapshot: a reference as written, a state as a reference to the file
// received. Anything else is refused, so the store holds only what Restore can take.
func (s *receivingSink) Close() error {
	var ref []byte
	if s.f == nil {
		if _, ok := fsm.ParseSnapshotRef(s.head); !ok && s.err == nil {
			s.err = fmt.Errorf("snapshot of %d bytes is neither a reference nor a state file", len(s.head))
		}
		ref = s.head
	} else {
		applied, err := s.closeState()
		if err != nil && s.err == nil {
			s.err = err
		}
		ref = fsm.SnapshotRef(applied)
	}
	if s.err == nil {
		_, s.err = s.SnapshotSink.Write(ref)
	}
	if s.err != nil {
		_ = s.SnapshotSink.Cancel()
		return s.err
	}
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	if s.f != nil {
		s.store.received.Store(&receivedState{id: s.ID()})
	}
	return nil
}

// closeState syncs the received file and returns the index its state holds.
func (s *receivingSink) closeState() (uint64, error) {
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	applied, err := fsm.StateFileApplied(s.path)
	if err != nil {
		return 0, fmt.Errorf("received snapshot is not a state file: %w", err)
	}
	return applied, nil
}

func (s *receivingSink) Cancel() error {
	if s.f != nil {
		_ = s.f.Close()
	}
	return s.SnapshotSink.Cancel() // removes the directory, the received file with it
}

// receivedState names the snapshot whose state was received last: raft restores it next.
type receivedState struct{ id string }

// Open opens a snapshot for raft: a reference as a stream of the current state, anything
// else as stored.
func (s *stateSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	ref, head, isRef, err := readRef(rc)
	if err != nil {
		_ = rc.Close()
		return nil, nil, fmt.Errorf("open snapshot %s: %w", id, err)
	}
	if !isRef {
		return meta, struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), rc), rc}, nil
	}
	_ = rc.Close()
	if s.dir != "" {
		if m, stream, ok, err := s.openReceived(meta); ok || err != nil {
			return m, stream, err
		}
	}
	// Once it has the state, the follower needs the log from meta.Index on: the entries
	// after it, and the entry itself, which raft sends as the one they follow.
	opened, release := time.Now(), s.pins.hold(meta.Index)
	st, err := s.fsm.OpenState()
	if err != nil {
		release(0)
		return nil, nil, fmt.Errorf("open snapshot %s: %w", id, err)
	}
	if st.Applied() < ref {
		_ = st.Close()
		release(0)
		return nil, nil, fmt.Errorf("open snapshot %s: %w (fsm.db applied %d, snapshot refers to %d)",
			id, fsm.ErrStateBehindSnapshot, st.Applied(), ref)
	}
	// raft sends meta.Size bytes and the follower checks it received exactly that many.
	m := *meta
	m.Size = st.Size()
	pr, pw := io.Pipe()
	go func() {
		var w io.Writer = pw
		if s.sendRate > 0 {
			w = &pacedWriter{w: pw, rate: s.sendRate, start: time.Now()}
		}
		_, err := st.WriteTo(w)
		_ = st.Close()
		pw.CloseWithError(err)
	}()
	// raft closes the stream once the follower has installed the state, and then sends it the
	// entries that came meanwhile. It must take them faster than they came to catch up at
	// all; the log is held for twice as long as the sending took (at least logHoldMin),
	// which is time enough for a follower that takes them 1.5 times as fast.
	return &m, &heldStream{PipeReader: pr, release: func() { release(max(logHoldMin, 2*time.Since(opened))) }}, nil
}

// openReceived opens a snapshot whose state was received into a file and not yet taken by
// the FSM. Raft opens the snapshot it just received to restore it: that open gets the file's
// token, and Restore moves the file into place. Any other open (a leader sending it on,
// should the restore have failed) gets the file's contents, a state like any other.
func (s *stateSnapshots) openReceived(meta *raft.SnapshotMeta) (*raft.SnapshotMeta, io.ReadCloser, bool, error) {
	path := receivedStatePath(s.dir, meta.ID)
	if r := s.received.Load(); r != nil && r.id == meta.ID && s.received.CompareAndSwap(r, nil) {
		if fileExists(path) {
			token := fsm.StateFileToken(path)
			m := *meta
			m.Size = int64(len(token))
			return &m, io.NopCloser(bytes.NewReader(token)), true, nil
		}
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("open snapshot %s: %w", meta.ID, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, false, fmt.Errorf("open snapshot %s: %w", meta.ID, err)
	}
	m := *meta
	m.Size = st.Size()
	return &m, f, true, nil
}

// pacedWriter writes no faster than rate bytes per second on average since start.
//
// A leader that reads fsm.db at full speed for a follower takes the disk from every fsync
// of the cluster: in catch-ups of a wiped node at 10 M messages (6–8 GB) under a c = 64
// load, 66 and 24 of 200 seconds had a send above 100 ms, against 8 and 2 with the read
// capped at 64 MiB/s, which took ~60 s longer (README, "Snapshots at scale"). bbolt reads
// the file through the pipe this writes to, so pacing the writes paces the reads.
type pacedWriter struct {
	w     io.Writer
	rate  int64 // bytes per second
	start time.Time
	n     int64 // bytes written
}

// pacedChunk is how much is written between two checks of the rate.
const pacedChunk = 1 << 20

func (p *pacedWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > written {
		n, err := p.w.Write(b[written:min(len(b), written+pacedChunk)])
		written += n
		p.n += int64(n)
		if err != nil {
			return written, err
		}
		due := time.Duration(float64(p.n) / float64(p.rate) * float64(time.Second))
		if ahead := due - time.Since(p.start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	return written, nil
}

// logHoldMin is the least time the log stays held after a follower was sent the state.
var logHoldMin = time.Minute

// heldStream is a state stream that releases its hold on the log when closed.
type heldStream struct {
	*io.PipeReader
	release func()
}

func (h *heldStream) Close() error {
	h.release()
	return h.PipeReader.Close()
}

// readRef reads the head of a stored snapshot and reports whether it is a reference.
func readRef(r io.Reader) (ref uint64, head []byte, isRef bool, err error) {
	head = make([]byte, fsm.SnapshotRefLen)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, nil, false, err
	}
	head = head[:n]
	ref, isRef = fsm.ParseSnapshotRef(head)
	return ref, head, isRef, nil
}

// catchUp brings the FSM up to the newest snapshot when its file is behind it (a lost or
// replaced fsm.db, or a state received from the leader just before a crash): raft itself
// does not restore at start (see New), and replays only the entries after the snapshot. A
// stored or received state file is restored; a reference cannot be, since it stands for the
// very file that is behind, so the node refuses to start and says how to get the state back.
//
// It first removes the snapshots a crash left unfinished ("<id>.tmp"), which raft's file
// store ignores but never removes: a state being received when the node stopped is gigabytes.
func (s *stateSnapshots) catchUp() error {
	if s.dir != "" {
		unfinished, _ := filepath.Glob(filepath.Join(s.dir, "snapshots", "*.tmp"))
		for _, dir := range unfinished {
			_ = os.RemoveAll(dir)
		}
	}
	list, err := s.List()
	if err != nil || len(list) == 0 {
		return err
	}
	newest := list[0]
	applied := s.fsm.AppliedIndex()
	path := receivedStatePath(s.dir, newest.ID)
	received := s.dir != "" && fileExists(path)
	if newest.Index <= applied && !received {
		return nil
	}
	_, rc, err := s.SnapshotStore.Open(newest.ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", newest.ID, err)
	}
	ref, head, isRef, err := readRef(rc)
	if err != nil {
		_ = rc.Close()
		return fmt.Errorf("open snapshot %s: %w", newest.ID, err)
	}
	if isRef {
		_ = rc.Close()
		if ref <= applied {
			// Taken by the FSM, but the crash came before its removal here was on disk: the
			// name may still be fsm.db's own file, which must never be sent as a state.
			if received {
				_ = os.Remove(path)
			}
			return nil // only entries that never reach the FSM lie between
		}
		if received { // a state received before a crash, which the FSM had not yet taken
			return s.fsm.Restore(io.NopCloser(bytes.NewReader(fsm.StateFileToken(path))))
		}
		return fmt.Errorf("%w (fsm.db applied %d, snapshot %s refers to %d): remove this node's data dir and "+
			"start it again with -join, and the leader sends it the state", fsm.ErrStateBehindSnapshot, applied, newest.ID, ref)
	}
	return s.fsm.Restore(struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), rc), rc})
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
