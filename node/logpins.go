package node

import (
	"sync"
	"time"
)

// logPins holds back the compaction of the raft log while a follower is being sent the
// state, and for a while after.
//
// A follower that receives the state needs the log from the snapshot's index on, but the
// leader keeps only TrailingLogs entries behind each snapshot it takes. When the state is
// large, sending and installing it takes longer than that tail lasts under load (at 9.3 M
// messages, ~80 s against ~60 s of entries at 2,500 msg/s): the entries are gone when
// the follower asks for them, and it is sent the whole state again, and again, for as long
// as the load lasts. A pin keeps the entries from an index on until the follower has had
// the time to take them. Keeping more log than raft asked to drop is always safe; it costs
// only the disk space of those entries in raft.db.
type logPins struct {
	mu   sync.Mutex
	held map[uint64]int // index → how many holds keep the entries from it on
}

// hold keeps the entries from index on from compaction until the returned release is called
// and its delay has passed. A nil logPins holds nothing.
func (p *logPins) hold(index uint64) (release func(after time.Duration)) {
	if p == nil {
		return func(time.Duration) {}
	}
	p.mu.Lock()
	if p.held == nil {
		p.held = map[uint64]int{}
	}
	p.held[index]++
	p.mu.Unlock()
	var once sync.Once
	return func(after time.Duration) {
		once.Do(func() { time.AfterFunc(after, func() { p.drop(index) }) })
	}
}

func (p *logPins) drop(index uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held[index]--; p.held[index] <= 0 {
		delete(p.held, index)
	}
}

// limit returns the last index compaction may delete, given that it was asked to delete
// up to max.
func (p *logPins) limit(max uint64) uint64 {
	if p == nil {
		return max
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for index := range p.held {
		if index == 0 {
			return 0
		}
		if index <= max {
			max = index - 1
		}
	}
	return max
}
