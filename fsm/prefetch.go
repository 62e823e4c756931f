package fsm

import (
	"io"
	"os"
)

// Reading fsm.db through before a freelist rebuild.
//
// A file whose newest commit stored no freelist (a crash while the list was over
// storedFreelistLimit) makes bbolt's open rebuild the list: it visits every page of the
// file in tree order, so with a cold page cache each page is a read of its own, scattered
// over the whole file. A follower of the 13.9 M-message cluster (15 GB fsm.db) took 469 and
// 574 s to open that way. Reading the file once from start to end first runs at the disk's
// sequential speed, and the rebuild then reads memory: a 2.0 GB test file with 9 M keys
// opened in 41.9 s from a cold cache, and in 5.4 s of reading plus 1.0 s of opening; on
// that cluster, a follower killed with kill -9 (16.2 GB, page cache dropped) was ready in
// 64–71 s, against 456 s for the build before in the same session. A file larger than the
// page cache keeps only its last part cached, which still spares the rebuild those reads:
// with the test file's page cache limited by a memory cgroup to half the file, 66.6 s
// became 2.9 + 20.9 s; to a quarter, 95.2 s became 1.7 + 77.6 s.
// Files with a stored freelist (every clean stop, most crashes) are not read: their open
// reads two pages.

// readThrough reads the file at path once, from start to end, and returns the bytes read.
func readThrough(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
