package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// sameAnswer compares a replayed result with the first one.
func sameAnswer(t *testing.T, first, replay *Result) {
	t.Helper()
	if first.Replayed || !replay.Replayed {
		t.Fatalf("got Replayed %v then %v, want false then true", first.Replayed, replay.Replayed)
	}
	again := *replay
	again.Replayed = false
	if !reflect.DeepEqual(*first, again) {
		t.Fatalf("replay: got %+v, want %+v", again, *first)
	}
}

func TestIdempotentReplay(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  CommandType
		body interface{}
	}{
		{"send", CmdSendMessage, &SendMessage{MsgID: "m1", SendID: "a", RecvID: "b", SessionType: SessionSingle}},
		{"create group", CmdCreateGroup, &CreateGroup{GroupID: "g", Name: "g", Members: []MemberSpec{{UID: "a", Role: RoleOwner}}}},
		{"register", CmdRegisterUser, &RegisterUser{User: User{UID: "c"}}},
		{"delete", CmdDeleteUsers, &DeleteUsers{UIDs: []string{"b", "zz"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.register("a", "b")
			key := idemKey("op-" + tc.name)
			first := h.applyKey(tc.typ, key, tc.body)
			if first.Err != "" {
				t.Fatalf("first apply: got %q, want success", first.Err)
			}
			before := h.digest()
			replay := h.applyKey(tc.typ, key, tc.body)
			sameAnswer(t, first, replay)
			if h.digest() != before {
				t.Fatalf("a replay changed the state")
			}
			stored, ok, err := h.f.IdempotentResult(key)
			if err != nil || !ok {
				t.Fatalf("IdempotentResult: got ok=%v err=%v, want the record", ok, err)
			}
			sameAnswer(t, first, stored)
		})
	}
}

func TestIdempotentFirstAnswerIsTheAnswer(t *testing.T) {
	h := newHarness(t)
	h.register("a")
	key := idemKey("send-to-b")
	send := &SendMessage{MsgID: "m1", SendID: "a", RecvID: "b", SessionType: SessionSingle}
	first := h.applyKey(CmdSendMessage, key, send)
	wantErr(t, first, ErrUserNotFound)
	h.register("b")
	sameAnswer(t, first, h.applyKey(CmdSendMessage, key, send))
	if msgs, _ := h.f.PullMessages("si_a_b", 1, 10, 0); msgs != nil {
		t.Fatalf("got %v, want no message", msgs)
	}
	// Another key is another request.
	if r := h.applyKey(CmdSendMessage, idemKey("other"), send); r.Err != "" || r.Seq != 1 {
		t.Fatalf("new key: got %+v, want seq 1", r)
	}
}

func TestIdempotentWithinOneBatch(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	key := idemKey("dup")
	send := &SendMessage{MsgID: "m1", SendID: "a", RecvID: "b", SessionType: SessionSingle}
	res := h.f.ApplyBatch([]*raft.Log{h.next(CmdSendMessage, key, send), h.next(CmdSendMessage, key, send)})
	sameAnswer(t, asResult(t, res[0]), asResult(t, res[1]))
	if msgs, _ := h.f.PullMessages("si_a_b", 1, 10, 0); len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
}

func TestIdempotentAcrossRestart(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	key := idemKey("k")
	send := &SendMessage{MsgID: "m1", SendID: "a", RecvID: "b", SessionType: SessionSingle}
	first := h.applyKey(CmdSendMessage, key, send)
	if err := h.f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	h.f = mustOpen(t, h.path, Options{})
	sameAnswer(t, first, h.applyKey(CmdSendMessage, key, send))
}

func TestPruneIdempotency(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	send := &SendMessage{MsgID: "m", SendID: "a", RecvID: "b", SessionType: SessionSingle}
	keys := [][]byte{idemKey("k1"), idemKey("k2"), idemKey("k3")}
	var times []time.Time
	for _, k := range keys {
		h.applyKey(CmdSendMessage, k, send)
		times = append(times, h.now)
	}
	if r := h.mustApply(CmdPruneIdempotency, &PruneIdempotency{Before: times[1].UnixNano()}); r.Pruned != 1 {
		t.Fatalf("first prune removed %d records, want 1", r.Pruned)
	}
	for i, want := range []bool{false, true, true} {
		if _, ok, _ := h.f.IdempotentResult(keys[i]); ok != want {
			t.Fatalf("key %d after prune: got present=%v, want %v", i+1, ok, want)
		}
	}
	// A pruned key is a new request again.
	if r := h.applyKey(CmdSendMessage, keys[0], send); r.Replayed || r.Seq != 4 {
		t.Fatalf("pruned key: got %+v, want a new apply with seq 4", r)
	}

	if r := h.mustApply(CmdPruneIdempotency, &PruneIdempotency{Before: h.now.UnixNano() + 1}); r.Pruned != 3 {
		t.Fatalf("second prune removed %d records, want 3", r.Pruned)
	}
	var left int
	if err := h.f.view(func(r *txn) error {
		left = r.idemLog.Stats().KeyN
		return nil
	}); err != nil {
		t.Fatalf("view: %v", err)
	}
	if n := len(h.f.idem.fp) + len(h.f.idem.full); left != 0 || n != 0 {
		t.Fatalf("got %d idempotency records and %d index entries left, want 0", left, n)
	}
}

// The index is rebuilt from the file: a reopened FSM and one restored from a snapshot answer
// a replayed request as the original did.
func TestIdempotencyIndexRebuilt(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	key := idemKey("op")
	first := h.applyKey(CmdSendMessage, key, &SendMessage{MsgID: "m", SendID: "a", RecvID: "b", SessionType: SessionSingle})
	data := mustState(t, h.f)
	if err := h.f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	reopened := mustOpen(t, h.path, Options{})
	restored := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	mustRestore(t, restored, data)
	for name, f := range map[string]*FSM{"reopened": reopened, "restored": restored} {
		r, ok, err := f.IdempotentResult(key)
		if err != nil || !ok || r.Seq != first.Seq || r.MsgID != first.MsgID || !r.Replayed {
			t.Fatalf("%s: got %+v %v %v, want the first result replayed", name, r, ok, err)
		}
	}
}

// Keys that share the first 8 bytes (the in-memory index's fingerprint) are told apart.
func TestIdempotencyKeysSharingAFingerprint(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	k1, k2, k3 := idemKey("samepfx-1"), idemKey("samepfx-2"), idemKey("samepfx-3")
	send := func(key []byte) *Result {
		return h.applyKey(CmdSendMessage, key, &SendMessage{MsgID: string(key[:9]), SendID: "a", RecvID: "b", SessionType: SessionSingle})
	}
	r1 := send(k1)
	t1 := h.now
	r2 := send(k2)
	if r2.Replayed || r2.Seq != r1.Seq+1 {
		t.Fatalf("second key: got %+v, want a new message", r2)
	}
	check := func(name string, f *FSM, key []byte, want *Result) {
		t.Helper()
		got, ok, err := f.IdempotentResult(key)
		switch {
		case want == nil && (ok || err != nil):
			t.Fatalf("%s: got %+v %v %v, want no record", name, got, ok, err)
		case want != nil && (!ok || err != nil || got.Seq != want.Seq):
			t.Fatalf("%s: got %+v %v %v, want seq %d", name, got, ok, err, want.Seq)
		}
	}
	check("k1", h.f, k1, r1)
	check("k2", h.f, k2, r2)
	check("k3 (never sent)", h.f, k3, nil)
	// Forget k1 (the fingerprint's holder): k2 stays, k1 is new again.
	h.mustApply(CmdPruneIdempotency, &PruneIdempotency{Before: t1.UnixNano() + 1})
	check("k1 after prune", h.f, k1, nil)
	check("k2 after prune", h.f, k2, r2)
	r3 := send(k3)
	check("k3", h.f, k3, r3)
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := mustOpen(t, h.path, Options{})
	check("k1 reopened", reopened, k1, nil)
	check("k2 reopened", reopened, k2, r2)
	check("k3 reopened", reopened, k3, r3)
}

// A file written with the key-ordered layout (idem + idemtime) is converted when opened.
func TestOldIdempotencyLayoutConverted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	h := &harness{t: t, f: mustOpen(t, path, Options{}), path: path, now: t0}
	h.register("a", "b")
	key := idemKey("op")
	first := h.applyKey(CmdSendMessage, key, &SendMessage{MsgID: "m", SendID: "a", RecvID: "b", SessionType: SessionSingle})
	if err := h.f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Rewrite the record the old way.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		log := tx.Bucket(bktIdemLog)
		k, v := log.Cursor().First()
		old, err := tx.CreateBucket(bktOldIdem)
		if err != nil {
			return err
		}
		oldTime, err := tx.CreateBucket(bktOldIdemTime)
		if err != nil {
			return err
		}
		if err := old.Put(bytes.Clone(k[8:]), append(bytes.Clone(k[:8]), v...)); err != nil {
			return err
		}
		if err := oldTime.Put(bytes.Clone(k), []byte{}); err != nil {
			return err
		}
		return log.Delete(k)
	})
	if err != nil {
		t.Fatalf("write old layout: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	f := mustOpen(t, path, Options{})
	if r, ok, err := f.IdempotentResult(key); err != nil || !ok || r.Seq != first.Seq {
		t.Fatalf("after conversion: got %+v %v %v, want the first result", r, ok, err)
	}
	if err := f.view(func(r *txn) error {
		if r.tx.Bucket(bktOldIdem) != nil || r.tx.Bucket(bktOldIdemTime) != nil {
			return errors.New("old buckets are still there")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestTimeKeyOrder(t *testing.T) {
	vals := []int64{-1 << 62, -5, 0, 3, 1 << 62}
	for i := 1; i < len(vals); i++ {
		if string(timeKey(vals[i-1])) >= string(timeKey(vals[i])) {
			t.Fatalf("timeKey(%d) does not sort before timeKey(%d)", vals[i-1], vals[i])
		}
	}
}

// TestIdempotencyIndexLoadedInParts: the index built at open by parallel range scans finds
// every record at its time, whether the records' times spread over the parts, all share
// one time, or their keys share fingerprints across parts.
func TestIdempotencyIndexLoadedInParts(t *testing.T) {
	for _, tc := range []struct {
		name string
		time func(i int) int64
	}{
		{"spread", func(i int) int64 { return int64(i) * 7919 }},
		{"one time", func(int) int64 { return 42 }},
		{"negative and positive", func(i int) int64 { return int64(i-5000) * 1e9 }},
		{"few times", func(i int) int64 { return int64(i % 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fsm.db")
			f := mustOpen(t, path, Options{})
			want := map[[IdemKeyLen]byte]int64{}
			err := f.db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bktIdemLog)
				for i := 0; i < 3*idemLoadBatch+17; i++ {
					var key [IdemKeyLen]byte
					binary.BigEndian.PutUint64(key[:], uint64(i%1000)) // fingerprints shared by up to 13 keys
					binary.BigEndian.PutUint64(key[8:], uint64(i))
					at := tc.time(i)
					want[key] = at
					if err := b.Put(idemLogKey(at, key[:]), []byte{0x90}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			// The records were put behind the index's back, so the index Close saved is not
			// theirs: make the open scan them.
			if err := os.Remove(idemCheckpointPath(path)); err != nil {
				t.Fatal(err)
			}
			f = mustOpen(t, path, Options{})
			if got := len(f.idem.fp) + len(f.idem.full); got != len(want) {
				t.Fatalf("index holds %d keys, want %d", got, len(want))
			}
			for key, at := range want {
				if got, ok := f.idem.get(key[:]); !ok || got != at {
					t.Fatalf("key %x: index says %d, %v; want %d", key[:16], got, ok, at)
				}
			}
		})
	}
}

// PruneIdempotency's Limit came after the command was in logs: an entry written before it
// (a one-element array) decodes with Limit 0, the full limit, and a build without Limit
// reads a new entry's Before.
func TestPruneIdempotencyEntriesFromBeforeLimit(t *testing.T) {
	old, err := EncodeValue(struct{ Before int64 }{Before: 42})
	if err != nil {
		t.Fatal(err)
	}
	var c PruneIdempotency
	if err := DecodeValue(old, &c); err != nil || c != (PruneIdempotency{Before: 42}) {
		t.Fatalf("old entry: got %+v, %v; want Before 42, Limit 0", c, err)
	}
	cur, err := EncodeValue(PruneIdempotency{Before: 43})
	if err != nil {
		t.Fatal(err)
	}
	var o struct{ Before int64 }
	if err := DecodeValue(cur, &o); err != nil || o.Before != 43 {
		t.Fatalf("new entry read without Limit: got %+v, %v; want Before 43", o, err)
	}
}
