package main

import (
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestBucketBoundsCoverEveryValue(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 999_999_999, maxTrackable - 1} {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucket %d of %d out of range [0, %d)", i, v, numBuckets)
		}
		if v >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-9 {
			t.Errorf("bucket of %d is [%d, %d], wider than 1/%d", v, lo, hi, subCount)
		}
	}
	// Buckets tile the range: each starts right after the previous one ends.
	_, prevHi := bucketBounds(0)
	for i := 1; i < numBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d is [%d, %d], previous ended at %d", i, lo, hi, prevHi)
		}
		prevHi = hi
	}
	if got, want := bucketOf(maxTrackable*4), numBuckets-1; got != want {
		t.Errorf("bucketOf(huge) = %d, want %d", got, want)
	}
}

// exact returns the q quantile of sorted values by the same rank rule as Quantile.
func exact(sorted []int64, q float64) int64 {
	rank := int(q*float64(len(sorted)) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestQuantilesMatchSortedSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string]func() int64{
		"uniform 0-20ms": func() int64 { return rng.Int64N(int64(20 * time.Millisecond)) },
		"lognormal ~1ms": func() int64 { return int64(float64(time.Millisecond) * rng.ExpFloat64() * rng.ExpFloat64()) },
		"bimodal 1ms/50ms": func() int64 {
			return map[bool]int64{true: int64(time.Millisecond), false: int64(50 * time.Millisecond)}[rng.IntN(100) < 97] + rng.Int64N(1000)
		},
		"tiny ns": func() int64 { return rng.Int64N(300) },
	}
	for name, gen := range cases {
		t.Run(name, func(t *testing.T) {
			h := NewHistogram()
			vals := make([]int64, 20000)
			for i := range vals {
				vals[i] = gen()
				h.Record(time.Duration(vals[i]))
			}
			sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
			s := h.Snapshot()
			if s.Count != int64(len(vals)) || s.Min != vals[0] || s.Max != vals[len(vals)-1] {
				t.Fatalf("count/min/max = %d/%d/%d, want %d/%d/%d", s.Count, s.Min, s.Max, len(vals), vals[0], vals[len(vals)-1])
			}
			for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999} {
				got, want := int64(s.Quantile(q)), exact(vals, q)
				if got < want || float64(got-want) > float64(want)/subCount+1 {
					t.Errorf("q%.3f: got %d, want %d (within 1/%d above)", q, got, want, subCount)
				}
			}
			if got, want := int64(s.Quantile(1)), vals[len(vals)-1]; got != want {
				t.Errorf("q1: got %d, want %d", got, want)
			}
		})
	}
}

func TestEmptyAndSingle(t *testing.T) {
	s := NewHistogram().Snapshot()
	if s.Count != 0 || s.Quantile(0.99) != 0 || s.Mean() != 0 || s.Min != 0 {
		t.Errorf("empty snapshot: count %d p99 %v mean %v min %d, want zeros", s.Count, s.Quantile(0.99), s.Mean(), s.Min)
	}
	h := NewHistogram()
	h.Record(3 * time.Millisecond)
	s = h.Snapshot()
	for _, q := range []float64{0, 0.5, 0.99, 1} {
		if got := s.Quantile(q); got != 3*time.Millisecond {
			t.Errorf("q%v of one value: got %v, want 3ms", q, got)
		}
	}
}

func TestSubAndMerge(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	first := h.Snapshot()
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	iv := h.Snapshot().Sub(first)
	if iv.Count != 100 {
		t.Fatalf("interval count: got %d, want 100", iv.Count)
	}
	if got := iv.Quantile(0.5); got < 50*time.Millisecond || got > 51*time.Millisecond {
		t.Errorf("interval p50: got %v, want ~50ms", got)
	}
	if iv.Min < int64(990*time.Microsecond) || iv.Max != int64(100*time.Millisecond) {
		t.Errorf("interval min/max: got %d/%d, want ~1ms/100ms", iv.Min, iv.Max)
	}
	m := &Snapshot{}
	m.Merge(first)
	m.Merge(iv)
	if m.Count != 200 || m.Min != int64(time.Microsecond) || m.Max != int64(100*time.Millisecond) {
		t.Errorf("merged count/min/max: got %d/%d/%d", m.Count, m.Min, m.Max)
	}
}

func TestConcurrentRecord(t *testing.T) {
	h := NewHistogram()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				h.Record(time.Duration(w*1000+i) * time.Microsecond)
			}
		}(w)
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Count != 8000 || s.Min != int64(time.Duration(0)) || s.Max != int64(7999*time.Microsecond) {
		t.Errorf("count/min/max: got %d/%d/%d, want 8000/0/%d", s.Count, s.Min, s.Max, int64(7999*time.Microsecond))
	}
}
