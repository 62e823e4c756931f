package node

import (
	"testing"

	"github.com/hashicorp/raft"
)

type countingDeletes struct {
	raft.LogStore
	ranges [][2]uint64
}

func (c *countingDeletes) DeleteRange(min, max uint64) error {
	c.ranges = append(c.ranges, [2]uint64{min, max})
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
	}
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	if first != 2*compactionChunk+11 || last != n {
		t.Fatalf("log is %d..%d, want %d..%d", first, last, 2*compactionChunk+11, n)
	}
	// An empty range deletes nothing.
	inner.ranges = nil
	if err := store.DeleteRange(10, 9); err != nil || len(inner.ranges) != 0 {
		t.Fatalf("empty range: %v, deletes %v", err, inner.ranges)
	}
}
