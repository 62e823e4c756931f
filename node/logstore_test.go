package node

import (
	"testing"

	"github.com/hashicorp/raft"
)

// countingDeletes records the ranges deleted and, for each, which of its entries had been
// read since the previous delete.
type countingDeletes struct {
	raft.LogStore
	ranges [][2]uint64
	read   map[uint64]bool
	unread [][]uint64 // per range deleted: its entries not read before it
}

func (c *countingDeletes) GetLog(index uint64, log *raft.Log) error {
	if c.read == nil {
		c.read = map[uint64]bool{}
	}
	c.read[index] = true
	return c.LogStore.GetLog(index, log)
}

func (c *countingDeletes) DeleteRange(min, max uint64) error {
	c.ranges = append(c.ranges, [2]uint64{min, max})
	var unread []uint64
	for i := min; i <= max; i++ {
		if !c.read[i] {
			unread = append(unread, i)
		}
	}
	c.unread = append(c.unread, unread)
	c.read = nil
	return c.LogStore.DeleteRange(min, max)
}

func TestChunkedDeletesKeepTheLogContiguous(t *testing.T) {
	inner := &countingDeletes{LogStore: raft.NewInmemStore()}
	const n = 3*compactionChunk + 100
	logs := make([]*raft.Log, n)
	for i := range logs {
		logs[i] = &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand}
	}
	if err := inner.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	store := chunkedDeletes{LogStore: inner}
	if err := store.DeleteRange(1, 2*compactionChunk+10); err != nil {
		t.Fatal(err)
	}
	want := [][2]uint64{{1, compactionChunk}, {compactionChunk + 1, 2 * compactionChunk}, {2*compactionChunk + 1, 2*compactionChunk + 10}}
	if len(inner.ranges) != len(want) {
		t.Fatalf("got deletes %v, want %v", inner.ranges, want)
	}
	for i := range want {
		if inner.ranges[i] != want[i] {
			t.Fatalf("got deletes %v, want %v", inner.ranges, want)
		}
		// Each chunk was read just before it was deleted, so its pages were in memory.
		if len(inner.unread[i]) != 0 {
			t.Fatalf("delete of %v: %d entries not read first (%v...)", want[i], len(inner.unread[i]), inner.unread[i][0])
		}
	}
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	if first != 2*compactionChunk+11 || last != n {
		t.Fatalf("log is %d..%d, want %d..%d", first, last, 2*compactionChunk+11, n)
	}
	// A gap in the log (entries already gone) is read past, not an error.
	inner.ranges, inner.unread = nil, nil
	if err := store.DeleteRange(1, 2*compactionChunk+20); err != nil {
		t.Fatal(err)
	}
	if first, _ := store.FirstIndex(); first != 2*compactionChunk+21 {
		t.Fatalf("first index %d after deleting over a gap, want %d", first, 2*compactionChunk+21)
	}
	// An empty range deletes nothing.
	inner.ranges = nil
	if err := store.DeleteRange(10, 9); err != nil || len(inner.ranges) != 0 {
		t.Fatalf("empty range: %v, deletes %v", err, inner.ranges)
	}
}
