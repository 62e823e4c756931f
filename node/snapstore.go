package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/imnode/imnode/fsm"
	"github.com/imnode/imnode/internal/writeback"
)

// stateSnapshots is the raft snapshot store. It keeps what raft gives it in the inner store,
// which for the FSM's own snapshots is a reference of a few dozen bytes (see fsm.Snapshot),
// and when raft opens a reference to send it to a follower it streams a consistent view of
// fsm.db instead. A snapshot a leader sent to this node is a whole state file and is kept
// and opened as it is.
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
}

// Create creates a snapshot for raft to write. In a file store the state file is written
// through a writeback.Limiter: a state a leader sends is gigabytes, received as fast as the
// leader reads it, and left dirty it would later be flushed in one burst that stalls every
// other fsync on the disk.
func (s *stateSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil || s.dir == "" {
		return sink, err
	}
	return &limitedSink{SnapshotSink: sink, path: snapshotStatePath(s.dir, sink.ID())}, nil
}

// snapshotStatePath is where raft.FileSnapshotStore writes the state of a snapshot it is
// creating (file_snapshot.go: snapPath, tmpSuffix, stateFilePath).
func snapshotStatePath(dir, id string) string {
	return filepath.Join(dir, "snapshots", id+".tmp", "state.bin")
}

// limitedSink is a file store's sink whose state file is sent to disk as it grows. The
// sink's own file is not reachable, so the file is opened again by its path once a chunk
// is written (an FSM's reference snapshot never gets that far). Writeback is only advice:
// if it fails, the sink goes on without it and still syncs the file when closed.
type limitedSink struct {
	raft.SnapshotSink
	path    string
	pending int // bytes written before the file was opened
	limit   *writeback.Limiter
	f       *os.File
	off     bool
}

func (s *limitedSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	if !s.off {
		s.wrote(n)
	}
	return n, err
}

func (s *limitedSink) wrote(n int) {
	if s.limit == nil {
		if s.pending += n; s.pending < writeback.Chunk {
			return
		}
		f, err := os.OpenFile(s.path, os.O_WRONLY, 0)
		if err != nil {
			s.off = true
			return
		}
		s.f, s.limit, n = f, writeback.New(f), s.pending
	}
	s.off = s.limit.Wrote(n) != nil
}

func (s *limitedSink) Close() error { s.closeFile(); return s.SnapshotSink.Close() }

func (s *limitedSink) Cancel() error { s.closeFile(); return s.SnapshotSink.Cancel() }

func (s *limitedSink) closeFile() {
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
	s.off = true
}

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
// replaced fsm.db): raft itself does not restore at start (see New), and replays only the
// entries after the snapshot. A stored state file is restored; a reference cannot be, since
// it stands for the very file that is behind, so the node refuses to start and says how to
// get the state back.
func (s *stateSnapshots) catchUp() error {
	list, err := s.List()
	if err != nil || len(list) == 0 {
		return err
	}
	newest := list[0]
	applied := s.fsm.AppliedIndex()
	if newest.Index <= applied {
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
			return nil // only entries that never reach the FSM lie between
		}
		return fmt.Errorf("%w (fsm.db applied %d, snapshot %s refers to %d): remove this node's data dir and "+
			"start it again with -join, and the leader sends it the state", fsm.ErrStateBehindSnapshot, applied, newest.ID, ref)
	}
	return s.fsm.Restore(struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), rc), rc})
}
