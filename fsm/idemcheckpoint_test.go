package fsm

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// sendKeyed sends n messages from a to b, each with its own idempotency key; keys whose
// names share their first 8 bytes share a fingerprint, so both of the index's maps fill.
func sendKeyed(h *harness, prefix string, n int) (keys [][]byte) {
	h.t.Helper()
	for i := range n {
		key := idemKey(fmt.Sprintf("%-8.8s%d", prefix, i))
		r := h.applyKey(CmdSendMessage, key, &SendMessage{MsgID: string(key[:12]), SendID: "a", RecvID: "b", SessionType: SessionSingle})
		if r.Err != "" {
			h.t.Fatalf("send: %s", r.Err)
		}
		keys = append(keys, key)
	}
	return keys
}

// sameIndexAsScan fails unless f's index answers for keys as a scan of its file does, and
// holds as many keys. (Which of two keys sharing a fingerprint sits in fp may differ.)
func sameIndexAsScan(t *testing.T, f *FSM, keys [][]byte) {
	t.Helper()
	var scanned idemIndex
	if err := scanned.load(f.db); err != nil {
		t.Fatal(err)
	}
	if got, want := f.idem.len(), scanned.len(); got != want {
		t.Fatalf("index holds %d keys, a scan finds %d", got, want)
	}
	err := f.db.View(func(tx *bolt.Tx) error {
		// find is the time of key's record as x finds it: get, then the record checked.
		find := func(x *idemIndex, key []byte) (int64, bool) {
			at, ok := x.get(key)
			return at, ok && tx.Bucket(bktIdemLog).Get(idemLogKey(at, key)) != nil
		}
		for _, key := range keys {
			gt, gok := find(&f.idem, key)
			wt, wok := find(&scanned, key)
			if gok != wok || gok && gt != wt {
				t.Fatalf("key %q: the index finds %d %v, a scan %d %v", key[:12], gt, gok, wt, wok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// reopen closes h's FSM and opens its file again, returning what the open logged.
func reopen(h *harness) string {
	h.t.Helper()
	if err := h.f.Close(); err != nil {
		h.t.Fatalf("close: %v", err)
	}
	var log bytes.Buffer
	h.f = mustOpen(h.t, h.path, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	return log.String()
}

func TestIdempotencyIndexSavedOnCloseAndReadOnOpen(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	keys := sendKeyed(h, "shared", 50)
	keys = append(keys, sendKeyed(h, "other", 50)...)
	if len(h.f.idem.full) == 0 {
		t.Fatal("no key shares a fingerprint: the test covers only one map")
	}
	send := &SendMessage{MsgID: "once", SendID: "a", RecvID: "b", SessionType: SessionSingle}
	first := h.applyKey(CmdSendMessage, idemKey("once"), send)
	log := reopen(h)
	if !strings.Contains(log, "saved=true") {
		t.Fatalf("open did not read the saved index; it logged:\n%s", log)
	}
	if _, err := os.Stat(idemCheckpointPath(h.path)); !os.IsNotExist(err) {
		t.Fatalf("the saved index is still there after open (%v): a later crash would meet it", err)
	}
	sameIndexAsScan(t, h.f, keys)
	sameAnswer(t, first, h.applyKey(CmdSendMessage, idemKey("once"), send))
}

func TestIdempotencyIndexSavedForAnotherStateIsNotUsed(t *testing.T) {
	cases := []struct {
		name string
		// spoil turns the saved index at path into one that must not be used; old is the
		// file as it was saved after the first half of the sends.
		spoil func(t *testing.T, path string, old []byte)
	}{
		{"older state", func(t *testing.T, path string, old []byte) { mustWrite(t, path, old) }},
		{"flipped byte", func(t *testing.T, path string, _ []byte) {
			b := mustRead(t, path)
			b[len(b)/2] ^= 1
			mustWrite(t, path, b)
		}},
		{"truncated", func(t *testing.T, path string, _ []byte) {
			b := mustRead(t, path)
			mustWrite(t, path, b[:len(b)-16])
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.register("a", "b")
			keys := sendKeyed(h, "shared", 40)
			reopen(h)
			if err := h.f.Close(); err != nil {
				t.Fatal(err)
			}
			old := mustRead(t, idemCheckpointPath(h.path))
			h.f = mustOpen(t, h.path, Options{})
			keys = append(keys, sendKeyed(h, "later", 40)...)
			h.mustApply(CmdPruneIdempotency, &PruneIdempotency{Before: t0.UnixNano() + 10e9}) // the first few
			if err := h.f.Close(); err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, idemCheckpointPath(h.path), old)
			var log bytes.Buffer
			h.f = mustOpen(t, h.path, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if !strings.Contains(log.String(), "saved=false") || !strings.Contains(log.String(), "scanning") {
				t.Fatalf("open used the spoilt index; it logged:\n%s", log.String())
			}
			sameIndexAsScan(t, h.f, keys)
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
