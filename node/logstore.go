package node

import "github.com/hashicorp/raft"

// compactionChunk is how many log entries one transaction of a compaction deletes.
const compactionChunk = 4096

// chunkedDeletes deletes a range of the log in transactions of compactionChunk entries.
//
// After each snapshot raft drops the log up to it, which under load is every entry since
// the previous snapshot (about 130,000 at 4,000 writes/s and one snapshot per 30 s).
// raft-boltdb deletes the range in one transaction, which holds the file's only writer for
// the whole of it: appends, and so every write of the cluster, stalled for over a second
// (1.9 s in a run to one million messages). Deleting oldest first in chunks lets appends
// in between, and a crash halfway leaves a log that is still contiguous.
//
// It also deletes nothing that pins hold (see logPins).
type chunkedDeletes struct {
	raft.LogStore
	pins *logPins
}

func (c chunkedDeletes) DeleteRange(min, max uint64) error {
	max = c.pins.limit(max)
	for lo := min; lo <= max; lo += compactionChunk {
		hi := max
		if max-lo >= compactionChunk {
			hi = lo + compactionChunk - 1
		}
		if err := c.LogStore.DeleteRange(lo, hi); err != nil {
			return err
		}
	}
	return nil
}
