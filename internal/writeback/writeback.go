// Package writeback keeps a long sequential write from piling up in the page cache.
//
// A node that joins a cluster receives the whole state, gigabytes of it, as fast as the
// leader can read it, into the file that becomes its fsm.db. Left to the kernel, those pages stay dirty until a threshold (10% of memory by
// default on Linux) and are then flushed in one burst, and every fsync on the same disk
// waits behind the burst: on a disk the nodes share, the others' raft appends stall for
// seconds. A Limiter asks for the written bytes to go to disk every few megabytes instead,
// so at most about two chunks are dirty at a time and the disk sees a steady stream, as
// RocksDB's bytes_per_sync option does for its files.
package writeback

import "os"

// Chunk is how many bytes a Limiter lets accumulate before it sends them to disk.
const Chunk = 8 << 20

// Limiter follows a file that is written from start to end and sends each completed chunk
// to disk, waiting for the chunk before it: writing runs at most about two chunks ahead of
// the disk. It does not make the file durable; the writer still syncs it at the end.
type Limiter struct {
	f       *os.File
	chunk   int64
	written int64 // bytes written so far, as reported to Wrote
	started int64 // bytes before this offset have been sent to disk
	waited  int64 // bytes before this offset are on disk

	start, wait func(f *os.File, off, n int64) error // startRange and waitRange but in tests
}

// New returns a Limiter for f, whose writes begin at offset 0.
func New(f *os.File) *Limiter {
	return &Limiter{f: f, chunk: Chunk, start: startRange, wait: waitRange}
}

// Wrote records that n more bytes were written at the end of the file and, at each chunk
// boundary passed, starts the chunk's writeback and waits for the one before.
func (l *Limiter) Wrote(n int) error {
	l.written += int64(n)
	if l.written-l.started < l.chunk {
		return nil
	}
	if l.started > l.waited {
		if err := l.wait(l.f, l.waited, l.started-l.waited); err != nil {
			return err
		}
		l.waited = l.started
	}
	if err := l.start(l.f, l.started, l.written-l.started); err != nil {
		return err
	}
	l.started = l.written
	return nil
}

// Writer is a file written through a Limiter.
type Writer struct {
	f *os.File
	l *Limiter
}

// NewWriter returns a Writer that writes f from its start.
func NewWriter(f *os.File) *Writer { return &Writer{f: f, l: New(f)} }

// Write writes p to the file and keeps the dirty part of it bounded.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		return n, err
	}
	return n, w.l.Wrote(n)
}
