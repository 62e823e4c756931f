package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-bucketed like HdrHistogram: values below 2^subBits nanoseconds have
// one bucket each, and every later power-of-two range is split into 2^subBits linear
// sub-buckets, so a bucket's width is at most 1/128 of its value (< 0.8% error). Values
// above maxTrackable land in the last bucket; the exact maximum is kept beside the buckets.
const (
	subBits      = 7
	subCount     = 1 << subBits
	maxTrackable = int64(1) << 40 // ~18 minutes in nanoseconds
	numBuckets   = (40-subBits)*subCount + subCount
)

// bucketOf returns the bucket index of v (nanoseconds, >= 0).
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v >= maxTrackable {
		v = maxTrackable - 1
	}
	if v < subCount {
		return int(v)
	}
	exp := bits.Len64(uint64(v)) - subBits - 1
	sub := v >> uint(exp) // in [subCount, 2*subCount)
	return (exp+1)*subCount + int(sub-subCount)
}

// bucketBounds returns the smallest and largest value that land in bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	exp := uint(i/subCount - 1)
	sub := int64(i%subCount + subCount)
	return sub << exp, (sub+1)<<exp - 1
}

// Histogram records durations with bounded memory and is safe for concurrent use: every
// worker records into the same one with atomic adds, and a reader takes a Snapshot.
type Histogram struct {
	counts [numBuckets]atomic.Int64
	total  atomic.Int64
	sum    atomic.Int64
	min    atomic.Int64
	max    atomic.Int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	h.min.Store(math.MaxInt64)
	return h
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if v >= m || h.min.CompareAndSwap(m, v) {
			break
		}
	}
}

// Snapshot copies the histogram's current state. Records that race with it may be partly
// included; that only matters for progress lines, which are taken while workers run.
func (h *Histogram) Snapshot() *Snapshot {
	s := &Snapshot{Count: h.total.Load(), Sum: h.sum.Load(), Min: h.min.Load(), Max: h.max.Load()}
	s.counts = make([]int64, numBuckets)
	for i := range h.counts {
		s.counts[i] = h.counts[i].Load()
	}
	if s.Count == 0 {
		s.Min = 0
	}
	return s
}

// Snapshot is an immutable copy of a Histogram, on which percentiles are computed.
type Snapshot struct {
	Count  int64
	Sum    int64 // nanoseconds
	Min    int64 // nanoseconds; exact
	Max    int64 // nanoseconds; exact
	counts []int64
}

// Sub returns s minus an earlier snapshot of the same histogram: the values recorded in
// between. Min and Max of the difference are bounded by the buckets' edges, not exact.
func (s *Snapshot) Sub(prev *Snapshot) *Snapshot {
	d := &Snapshot{Count: s.Count - prev.Count, Sum: s.Sum - prev.Sum, counts: make([]int64, len(s.counts))}
	first, last := -1, -1
	for i := range s.counts {
		d.counts[i] = s.counts[i] - prev.counts[i]
		if d.counts[i] > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first >= 0 {
		d.Min, _ = bucketBounds(first)
		_, d.Max = bucketBounds(last)
		d.Max = min(d.Max, s.Max)
		d.Min = max(d.Min, s.Min)
	}
	return d
}

// Merge adds other's values to s.
func (s *Snapshot) Merge(other *Snapshot) {
	if other.Count == 0 {
		return
	}
	if s.counts == nil {
		s.counts = make([]int64, numBuckets)
	}
	if s.Count == 0 || other.Min < s.Min {
		s.Min = other.Min
	}
	s.Max = max(s.Max, other.Max)
	s.Count += other.Count
	s.Sum += other.Sum
	for i, c := range other.counts {
		s.counts[i] += c
	}
}

// Quantile returns the value at quantile q (0..1): the highest value of the bucket that
// holds the ceil(q*Count)-th smallest value, capped at the exact maximum. Zero when empty.
func (s *Snapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(s.Min)
	}
	if q >= 1 {
		return time.Duration(s.Max)
	}
	rank := int64(math.Ceil(q * float64(s.Count)))
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			return time.Duration(min(max(hi, s.Min), s.Max))
		}
	}
	return time.Duration(s.Max)
}

// Mean returns the average value, zero when empty.
func (s *Snapshot) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return time.Duration(s.Sum / s.Count)
}
