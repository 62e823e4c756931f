package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// nextBatch builds the next log entry as one CmdBatch packing cmds (each from mustEncode).
func (h *harness) nextBatch(cmds ...[]byte) *raft.Log {
	h.t.Helper()
	data, err := EncodeBatch(cmds)
	if err != nil {
		h.t.Fatalf("encode batch: %v", err)
	}
	h.index++
	h.now = h.now.Add(time.Second)
	return &raft.Log{Index: h.index, Type: raft.LogCommand, Data: data, AppendedAt: h.now}
}

// applyBatch applies one batch entry and returns its results.
func (h *harness) applyBatch(cmds ...[]byte) BatchResults {
	h.t.Helper()
	out := h.f.Apply(h.nextBatch(cmds...))
	res, ok := out.(BatchResults)
	if !ok || len(res) != len(cmds) {
		h.t.Fatalf("batch apply returned %#v, want %d results", out, len(cmds))
	}
	return res
}

func sendCmd(t testing.TB, key []byte, id, from, to, text string) []byte {
	return mustEncode(t, CmdSendMessage, key, &SendMessage{MsgID: id, SendID: from, RecvID: to,
		SessionType: SessionSingle, ContentType: 101, Content: []byte(`{"text":"` + text + `"}`)})
}

// msgLogKeys lists msglog's keys.
func msgLogKeys(t *testing.T, f *FSM) []uint64 {
	t.Helper()
	var keys []uint64
	err := f.view(func(r *txn) error {
		return r.msgLog.ForEach(func(k, _ []byte) error {
			keys = append(keys, binary.BigEndian.Uint64(k))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("msglog keys: %v", err)
	}
	return keys
}

func texts(t *testing.T, f *FSM, conv string) []string {
	t.Helper()
	msgs, err := f.PullMessages(conv, 1, 1000, 0)
	if err != nil {
		t.Fatalf("pull %s: %v", conv, err)
	}
	var out []string
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("%s: message %d has seq %d", conv, i, m.Seq)
		}
		out = append(out, string(m.Content))
	}
	return out
}

func TestBatchSendsGetTheirOwnSeqsAndKeys(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c")
	first := h.index + 1
	res := h.applyBatch(
		sendCmd(t, nil, "m1", "a", "b", "1"),
		sendCmd(t, nil, "m2", "b", "a", "2"),
		sendCmd(t, nil, "m3", "a", "c", "3"),
		sendCmd(t, nil, "m4", "a", "b", "4"),
	)
	wantSeq := []uint64{1, 2, 1, 3}
	for i, r := range res {
		if r == nil || r.Err != "" || r.Seq != wantSeq[i] || r.SendTime != h.now.UnixNano() {
			t.Fatalf("result %d: got %+v, want seq %d at the entry's time", i, r, wantSeq[i])
		}
	}
	// The next entries' indexes are ids the batch took: they must not reuse them.
	h.send("b", "a", SessionSingle, "5")
	h.applyBatch(sendCmd(t, nil, "m6", "c", "a", "6"), sendCmd(t, nil, "m7", "a", "b", "7"))
	h.send("a", "b", SessionSingle, "8")
	if got, want := texts(t, h.f, "si_a_b"), []string{`{"text":"1"}`, `{"text":"2"}`, `{"text":"4"}`,
		`{"text":"5"}`, `{"text":"7"}`, `{"text":"8"}`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("si_a_b: got %q, want %q", got, want)
	}
	if got, want := texts(t, h.f, "si_a_c"), []string{`{"text":"3"}`, `{"text":"6"}`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("si_a_c: got %q, want %q", got, want)
	}
	// Batch at first: ids first..first+3; send at first+1: first+4; batch at first+2:
	// first+5, first+6; send at first+3: first+7.
	var want []uint64
	for i := uint64(0); i < 8; i++ {
		want = append(want, first+i)
	}
	if got := msgLogKeys(t, h.f); !reflect.DeepEqual(got, want) {
		t.Fatalf("msglog keys: got %v, want %v", got, want)
	}
}

func TestCommandsAloneKeepTheirIndexAsID(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	var want []uint64
	for i := 0; i < 3; i++ {
		h.send("a", "b", SessionSingle, "x")
		want = append(want, h.index)
	}
	if got := msgLogKeys(t, h.f); !reflect.DeepEqual(got, want) {
		t.Fatalf("msglog keys: got %v, want the send indexes %v", got, want)
	}
	err := h.f.view(func(r *txn) error {
		if v := r.meta.Get(keyLastID); v != nil {
			return fmt.Errorf("lastid recorded without any batch: %x", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// After a batch, a lone command whose index is above every id still gets its index.
	h.applyBatch(sendCmd(t, nil, "b1", "a", "b", "b1"), sendCmd(t, nil, "b2", "a", "b", "b2"))
	h.index += 5 // entries the FSM never sees (no-ops, configuration)
	h.send("a", "b", SessionSingle, "y")
	keys := msgLogKeys(t, h.f)
	if last := keys[len(keys)-1]; last != h.index {
		t.Fatalf("lone send after a gap: key %d, want its index %d", last, h.index)
	}
}

func TestBatchRegistrationsGetDistinctRegIndexes(t *testing.T) {
	h := newHarness(t)
	reg := func(uid string) []byte {
		return mustEncode(t, CmdRegisterUser, nil, &RegisterUser{User: User{UID: uid}})
	}
	del := mustEncode(t, CmdDeleteUsers, nil, &DeleteUsers{UIDs: []string{"a"}})
	res := h.applyBatch(reg("a"), reg("b"), del, reg("a"))
	seen := map[uint64]bool{}
	for _, i := range []int{0, 1, 3} {
		if res[i].Err != "" || seen[res[i].RegIndex] {
			t.Fatalf("registration %d: got %+v, want a fresh RegIndex", i, res[i])
		}
		seen[res[i].RegIndex] = true
	}
	u, ok, err := h.f.User("a")
	if err != nil || !ok || u.RegIndex != res[3].RegIndex {
		t.Fatalf("user a: got %+v %v %v, want RegIndex %d", u, ok, err, res[3].RegIndex)
	}
}

func TestBatchIdempotencyPerCommand(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	k1, k2 := idemKey("k1"), idemKey("k2")
	res := h.applyBatch(
		sendCmd(t, k1, "m1", "a", "b", "1"),
		sendCmd(t, k2, "m2", "a", "b", "2"),
		sendCmd(t, k1, "m1", "a", "b", "1"), // the same request again, in the same batch
	)
	if res[0].Replayed || res[1].Replayed || res[0].Seq != 1 || res[1].Seq != 2 {
		t.Fatalf("first applies: got %+v, %+v", res[0], res[1])
	}
	sameAnswer(t, res[0], res[2])
	// Across batches and alone.
	again := h.applyBatch(sendCmd(t, k2, "m2", "a", "b", "2"), sendCmd(t, nil, "m3", "a", "b", "3"))
	sameAnswer(t, res[1], again[0])
	if again[1].Seq != 3 {
		t.Fatalf("new send after replays: got %+v, want seq 3", again[1])
	}
	sameAnswer(t, res[0], h.applyKey(CmdSendMessage, k1, &SendMessage{MsgID: "m1", SendID: "a", RecvID: "b", SessionType: SessionSingle}))
	if got := texts(t, h.f, "si_a_b"); len(got) != 3 {
		t.Fatalf("got %d messages, want 3", len(got))
	}
	// A batch command's record is found after a restart too.
	path := h.path
	_ = h.f.Close()
	h.f = mustOpen(t, path, Options{})
	r, ok, err := h.f.IdempotentResult(k2)
	if err != nil || !ok || r.Seq != 2 {
		t.Fatalf("record of k2 after reopen: %+v %v %v", r, ok, err)
	}
}

func TestBatchErrorInOneCommandLeavesTheOthers(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	before := h.digest()
	res := h.applyBatch(
		sendCmd(t, nil, "m1", "a", "b", "1"),
		sendCmd(t, idemKey("bad"), "m2", "a", "nobody", "2"),
		mustEncode(t, CmdAddBlacklist, nil, &AddBlacklist{OwnerUID: "a", UID: "a"}),
		sendCmd(t, nil, "m3", "b", "a", "3"),
	)
	wantErr(t, res[1], ErrUserNotFound)
	if res[0].Err != "" || res[3].Err != "" || res[0].Seq != 1 || res[3].Seq != 2 {
		t.Fatalf("good commands: got %+v, %+v", res[0], res[3])
	}
	if h.digest() == before {
		t.Fatalf("state unchanged by the good commands")
	}
	// The failure is remembered under its key, like any first answer.
	r, ok, _ := h.f.IdempotentResult(idemKey("bad"))
	if !ok || r.Err != res[1].Err {
		t.Fatalf("record of the failed command: %+v %v", r, ok)
	}
}

func TestNestedBatchIsRefused(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	inner, err := EncodeBatch([][]byte{sendCmd(t, nil, "n", "a", "b", "n")})
	if err != nil {
		t.Fatal(err)
	}
	outer, err := EncodeBatch([][]byte{sendCmd(t, nil, "m", "a", "b", "m"), inner})
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(outer); !errors.Is(err, errNestedBatch) {
		t.Fatalf("Validate of a nested batch: got %v", err)
	}
	res := h.applyBatch(sendCmd(t, nil, "m", "a", "b", "m"), inner)
	wantErr(t, res[1], ErrInvalidArgument)
	if res[0].Seq != 1 || len(texts(t, h.f, "si_a_b")) != 1 {
		t.Fatalf("the nested batch was applied, or the other command was not")
	}
}

func TestValidateChecksEveryCommandOfABatch(t *testing.T) {
	good := sendCmd(t, nil, "m", "a", "b", "m")
	for name, cmds := range map[string][][]byte{
		"undecodable body": {good, {byte(CmdSendMessage), 0, 0xc1}},
		"unknown type":     {good, {99, 0, 0x90}},
		"short":            {{byte(CmdSendMessage)}},
	} {
		b, err := EncodeBatch(cmds)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(b); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
	if err := Validate(mustEncode(t, CmdBatch, idemKey("k"), [][]byte{good})); err == nil {
		t.Errorf("a batch with its own key was accepted")
	}
	if err := Validate(mustEncode(t, CmdBatch, nil, [][]byte{})); err == nil {
		t.Errorf("an empty batch was accepted")
	}
	ok, _ := EncodeBatch([][]byte{good, good})
	if err := Validate(ok); err != nil {
		t.Errorf("a good batch: %v", err)
	}
	if _, err := EncodeBatch(nil); err == nil {
		t.Errorf("EncodeBatch of nothing succeeded")
	}
}

// batchScript is the mixed workload of script with most entries packed in batches.
func batchScript(h *harness) []*raft.Log {
	enc := func(typ CommandType, key []byte, body interface{}) []byte { return mustEncode(h.t, typ, key, body) }
	send := func(id, from, to string, s int32) *SendMessage {
		return &SendMessage{MsgID: id, SendID: from, RecvID: to, SessionType: s}
	}
	return []*raft.Log{
		h.nextBatch(enc(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "a"}}),
			enc(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "b"}}),
			enc(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "c"}})),
		h.next(CmdImportFriends, nil, &ImportFriends{OwnerUID: "a", FriendUIDs: []string{"b", "c"}}),
		h.nextBatch(enc(CmdCreateGroup, idemKey("g"), &CreateGroup{GroupID: "g", Name: "g", Members: []MemberSpec{{UID: "a", Role: RoleOwner}, {UID: "b"}}}),
			enc(CmdSendMessage, idemKey("m1"), send("m1", "a", "g", SessionGroup)),
			enc(CmdSendMessage, idemKey("m1"), send("m1", "a", "g", SessionGroup)),
			enc(CmdSendMessage, nil, send("m2", "b", "g", SessionGroup)),
			enc(CmdSendMessage, nil, send("m3", "a", "c", SessionSingle))),
		h.next(CmdSendMessage, nil, send("m4", "c", "a", SessionSingle)),
		h.nextBatch(enc(CmdSendMessage, nil, send("m5", "c", "a", SessionSingle)),
			enc(CmdAddBlacklist, nil, &AddBlacklist{OwnerUID: "c", UID: "a"}),
			enc(CmdSendMessage, nil, send("m6", "a", "c", SessionSingle)),
			enc(CmdDeleteUsers, nil, &DeleteUsers{UIDs: []string{"b"}}),
			enc(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "b"}})),
		h.next(CmdSendMessage, nil, send("m7", "a", "g", SessionGroup)),
	}
}

func TestBatchReplayAndRestoreAgree(t *testing.T) {
	one := newHarness(t)
	logs := batchScript(one)
	var results []interface{}
	for _, l := range logs {
		results = append(results, one.f.Apply(l))
	}
	want := one.digest()

	// All entries in one raft batch, on a fresh file.
	two := newHarness(t)
	if got := two.f.ApplyBatch(logs); !reflect.DeepEqual(got, results) {
		t.Fatalf("results differ:\nsingle  %+v\nbatched %+v", results, got)
	}
	if d := two.digest(); d != want {
		t.Fatalf("digest after batched apply differs")
	}

	// Group commit with a crash halfway: the restart replays the log and ends the same.
	g := groupHarness(t, Options{})
	g.f.ApplyBatch(logs[:2])
	g.f.Flush()
	g.holdCommits()
	g.f.ApplyBatch(logs[2:4]) // never committed
	g.crash()
	g.f = mustOpen(t, g.path, Options{})
	g.f.ApplyBatch(logs) // the first two are skipped
	if d := g.digest(); d != want {
		t.Fatalf("digest after crash and replay differs")
	}

	// A follower restored from the leader's state stream, then fed the rest of the log.
	three := newHarness(t)
	three.f.ApplyBatch(logs[:3])
	state := mustState(t, three.f)
	four := newHarness(t)
	mustRestore(t, four.f, state)
	four.f.ApplyBatch(logs[2:]) // the overlap is skipped
	if d := four.digest(); d != want {
		t.Fatalf("digest after restore and replay differs")
	}
	// The ids continue from the restored record: a send after restore gets a fresh key.
	index, now := one.index, one.now
	for _, h := range []*harness{one, four} {
		h.index, h.now = index, now
		h.applyBatch(sendCmd(t, nil, "x1", "a", "c", "x1"), sendCmd(t, nil, "x2", "c", "a", "x2"))
	}
	if one.digest() != four.digest() {
		t.Fatalf("digests differ after a batch on both")
	}
	keys := msgLogKeys(t, four.f)
	for i := 1; i < len(keys); i++ {
		if keys[i] <= keys[i-1] {
			t.Fatalf("msglog keys not increasing: %v", keys)
		}
	}
}

// A file written before packing (every key an index) takes batches without a collision.
func TestBatchOnAFileFromBeforePacking(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	for i := 0; i < 20; i++ {
		h.send("a", "b", SessionSingle, fmt.Sprint(i))
	}
	err := h.f.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktMeta).Delete(keyLastID) })
	if err != nil {
		t.Fatal(err)
	}
	h.applyBatch(sendCmd(t, nil, "p", "a", "b", "p"), sendCmd(t, nil, "q", "b", "a", "q"))
	h.send("a", "b", SessionSingle, "r")
	got := texts(t, h.f, "si_a_b")
	if len(got) != 23 || !strings.Contains(got[22], `"r"`) || !strings.Contains(got[20], `"p"`) {
		t.Fatalf("got %q", got)
	}
}
