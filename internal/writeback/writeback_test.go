package writeback

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A Limiter starts each chunk's writeback as it completes and waits for the chunk before,
// so at most two chunks are ever ahead of the disk.
func TestLimiterStartsEachChunkAndWaitsForThePrevious(t *testing.T) {
	var calls []string
	l := &Limiter{chunk: 100,
		start: func(_ *os.File, off, n int64) error {
			calls = append(calls, fmt.Sprintf("start %d+%d", off, n))
			return nil
		},
		wait: func(_ *os.File, off, n int64) error {
			calls = append(calls, fmt.Sprintf("wait %d+%d", off, n))
			return nil
		},
	}
	for _, n := range []int{60, 60, 30, 10, 250, 99} { // 60, 120, 150, 160, 410, 509
		if err := l.Wrote(n); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"start 0+120", "wait 0+120", "start 120+290"}
	if !reflect.DeepEqual(calls, want) {
		t.Fatalf("calls = %q, want %q", calls, want)
	}
	calls = nil
	if err := l.Wrote(1); err != nil { // 510: the chunk from 410 is complete
		t.Fatal(err)
	}
	if want := []string{"wait 120+290", "start 410+100"}; !reflect.DeepEqual(calls, want) {
		t.Fatalf("calls = %q, want %q", calls, want)
	}
}

func TestLimiterStopsAtAnError(t *testing.T) {
	failed := fmt.Errorf("disk gone")
	l := &Limiter{chunk: 10,
		start: func(*os.File, int64, int64) error { return failed },
		wait:  func(*os.File, int64, int64) error { return nil },
	}
	if err := l.Wrote(10); err != failed {
		t.Fatalf("Wrote = %v, want %v", err, failed)
	}
}

// The system calls themselves work on a real file, and what a Writer writes is the file.
func TestWriterWritesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f)
	w.l.chunk = 4096
	want := bytes.Repeat([]byte("0123456789abcdef"), 3*4096/16+7)
	for p := want; len(p) > 0; {
		n := min(1000, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if w.l.waited == 0 {
		t.Fatalf("no chunk was waited for after %d bytes", len(want))
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes, not the %d written", len(got), len(want))
	}
}
