package node

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestPinsKeepTheLogFromTheLowestHeldIndex(t *testing.T) {
	inner := raft.NewInmemStore()
	logs := make([]*raft.Log, 100)
	for i := range logs {
		logs[i] = &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand}
	}
	if err := inner.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	pins := &logPins{}
	store := chunkedDeletes{LogStore: inner, pins: pins}
	first := func() uint64 {
		t.Helper()
		i, err := store.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		return i
	}

	release40 := pins.hold(40)
	release30 := pins.hold(30)
	release30again := pins.hold(30)
	if err := store.DeleteRange(1, 90); err != nil || first() != 30 {
		t.Fatalf("with 30 and 40 held: log starts at %d (%v), want 30", first(), err)
	}
	release30(0)
	release30(0) // a second call releases nothing more
	time.Sleep(20 * time.Millisecond)
	if got := pins.limit(100); got != 29 {
		t.Fatalf("after one of two holds on 30 was released: limit %d, want 29", got)
	}
	release30again(0)
	waitLimit(t, pins, 100, 39)
	if err := store.DeleteRange(30, 90); err != nil || first() != 40 {
		t.Fatalf("with 40 held: log starts at %d (%v), want 40", first(), err)
	}
	release40(0)
	waitLimit(t, pins, 100, 100)
	if err := store.DeleteRange(40, 90); err != nil || first() != 91 {
		t.Fatalf("with nothing held: log starts at %d (%v), want 91", first(), err)
	}
	var none *logPins
	none.hold(5)(0)
	if got := none.limit(100); got != 100 {
		t.Fatalf("nil pins limit %d, want 100", got)
	}
}

func waitLimit(t *testing.T, pins *logPins, max, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pins.limit(max) != want {
		if time.Now().After(deadline) {
			t.Fatalf("limit(%d) = %d, want %d", max, pins.limit(max), want)
		}
		time.Sleep(time.Millisecond)
	}
}
