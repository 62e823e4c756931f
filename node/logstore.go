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
// Each chunk is read before it is deleted. bbolt's delete reads every page it frees, and
// an entry of packed commands fills a page or more of its own, so a chunk is thousands of
// page reads. When the page cache has dropped them (a node catching up next door streams
// gigabytes through it), the delete waited for each page from disk inside the write
// transaction: 7,200 major page faults in one second on a follower right after its snapshot,
// and every write of the cluster waited 1.35 s for that follower's append. Read first, in
// read transactions that do not hold up appends, the pages are in memory when the delete
// runs.
//
// It also deletes nothing that pins hold (see logPins).
type chunkedDeletes struct {
	raft.LogStore
	pins *logPins
}

func (c chunkedDeletes) DeleteRange(min, max uint64) error {
	max = c.pins.limit(max)
	var entry raft.Log
	for lo := min; lo <= max; lo += compactionChunk {
		hi := max
		if max-lo >= compactionChunk {
			hi = lo + compactionChunk - 1
		}
		for i := lo; i <= hi; i++ {
			_ = c.LogStore.GetLog(i, &entry) // only to bring its pages in; a gap is no matter
		}
		if err := c.LogStore.DeleteRange(lo, hi); err != nil {
			return err
		}
	}
	return nil
}
