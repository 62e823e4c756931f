package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// harness feeds log entries to an FSM the way raft would: increasing indexes and, unless a
// test says otherwise, increasing times.
type harness struct {
	t     testing.TB
	f     *FSM
	path  string
	index uint64
	now   time.Time
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func mustOpen(t testing.TB, path string, opts Options) *FSM {
	t.Helper()
	f, err := Open(path, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fsm.db")
	return &harness{t: t, f: mustOpen(t, path, Options{}), path: path, now: t0}
}

func mustEncode(t testing.TB, typ CommandType, key []byte, body interface{}) []byte {
	t.Helper()
	b, err := Encode(typ, key, body)
	if err != nil {
		t.Fatalf("encode %s: %v", typ, err)
	}
	return b
}

// next builds the next log entry, one second after the previous one.
func (h *harness) next(typ CommandType, key []byte, body interface{}) *raft.Log {
	h.t.Helper()
	h.index++
	h.now = h.now.Add(time.Second)
	return &raft.Log{Index: h.index, Type: raft.LogCommand, Data: mustEncode(h.t, typ, key, body), AppendedAt: h.now}
}

func asResult(t testing.TB, v interface{}) *Result {
	t.Helper()
	r, ok := v.(*Result)
	if !ok || r == nil {
		t.Fatalf("apply returned %#v, want *Result", v)
	}
	return r
}

func (h *harness) applyKey(typ CommandType, key []byte, body interface{}) *Result {
	h.t.Helper()
	return asResult(h.t, h.f.Apply(h.next(typ, key, body)))
}

func (h *harness) apply(typ CommandType, body interface{}) *Result {
	h.t.Helper()
	return h.applyKey(typ, nil, body)
}

// mustApply applies a command that must succeed.
func (h *harness) mustApply(typ CommandType, body interface{}) *Result {
	h.t.Helper()
	r := h.apply(typ, body)
	if r.Err != "" {
		h.t.Fatalf("%s: got error %q, want success", typ, r.Err)
	}
	return r
}

func (h *harness) register(uids ...string) {
	h.t.Helper()
	for _, uid := range uids {
		h.mustApply(CmdRegisterUser, &RegisterUser{User: User{UID: uid, Name: "name " + uid}})
	}
}

func (h *harness) send(from, to string, session int32, text string) *Result {
	h.t.Helper()
	return h.apply(CmdSendMessage, &SendMessage{
		MsgID: fmt.Sprintf("msg%d", h.index+1), SendID: from, RecvID: to,
		SessionType: session, ContentType: 101, Content: []byte(`{"text":"` + text + `"}`),
	})
}

func (h *harness) digest() string {
	h.t.Helper()
	d, err := h.f.Digest()
	if err != nil {
		h.t.Fatalf("digest: %v", err)
	}
	return d
}

func wantErr(t *testing.T, r *Result, want error) {
	t.Helper()
	if got := r.Error(); !errors.Is(got, want) {
		t.Fatalf("got error %v, want %v", got, want)
	}
}

func idemKey(s string) []byte {
	k := bytes.Repeat([]byte{0}, IdemKeyLen)
	copy(k, s)
	return k
}

func TestEncodeDecode(t *testing.T) {
	body := &AddBlacklist{OwnerUID: "a", UID: "b"}
	for _, key := range [][]byte{nil, idemKey("k")} {
		b := mustEncode(t, CmdAddBlacklist, key, body)
		typ, gotKey, raw, err := Decode(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if typ != CmdAddBlacklist || !bytes.Equal(gotKey, key) {
			t.Fatalf("got type %s key %x, want %s key %x", typ, gotKey, CmdAddBlacklist, key)
		}
		var got AddBlacklist
		if err := DecodeBody(raw, &got); err != nil {
			t.Fatalf("decode body: %v", err)
		}
		if got != *body {
			t.Fatalf("got %+v, want %+v", got, *body)
		}
	}
	if _, err := Encode(CmdAddBlacklist, []byte("short"), body); err == nil {
		t.Fatalf("got no error for a 5-byte key, want one")
	}
	for _, b := range [][]byte{nil, {1}, {1, 32, 0}} {
		if _, _, _, err := Decode(b); err == nil {
			t.Errorf("Decode(%x): got no error, want one", b)
		}
	}
}

func TestErrorNames(t *testing.T) {
	for _, e := range []error{ErrInvalidArgument, ErrUserNotFound, ErrUserExists, ErrGroupNotFound,
		ErrNotGroupMember, ErrSelf, ErrBlocked, ErrRecordNotFound} {
		name := ErrorName(fmt.Errorf("wrapped: %w", e))
		if name == "" || ErrorByName(name) != e {
			t.Errorf("%v: name %q maps back to %v", e, name, ErrorByName(name))
		}
	}
	if ErrorName(errors.New("other")) != "" || ErrorName(nil) != "" {
		t.Errorf("got a name for a non-domain error")
	}
}

func mustPanic(t *testing.T, name string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: got no panic, want one", name)
		}
	}()
	fn()
}

func TestApplyPanicsOnBadEntries(t *testing.T) {
	h := newHarness(t)
	h.register("a")
	before := h.digest()
	unknown := mustEncode(t, CommandType(60), nil, &RegisterUser{})
	badBody := append([]byte{byte(CmdRegisterUser), 0}, 0xc1) // 0xc1 is never valid msgpack
	for name, data := range map[string][]byte{"short": {1}, "unknown type": unknown, "bad body": badBody} {
		mustPanic(t, name, func() { h.f.Apply(&raft.Log{Index: h.index + 1, Data: data}) })
	}
	if got := h.f.AppliedIndex(); got != h.index {
		t.Fatalf("applied index after panics: got %d, want %d", got, h.index)
	}
	if h.digest() != before {
		t.Fatalf("a panicking entry changed the state")
	}
	// The FSM is still usable (no lock left held by the panics).
	h.register("b")
}

func TestUnknownOptionalAndNonCommandEntries(t *testing.T) {
	h := newHarness(t)
	h.register("a")
	before := h.digest()
	optional := mustEncode(t, IgnoreUnknownFlag|CommandType(60), nil, &RegisterUser{})
	res := h.f.ApplyBatch([]*raft.Log{
		{Index: 2, Type: raft.LogCommand, Data: optional},
		{Index: 3, Type: raft.LogConfiguration, Data: []byte("not a command")},
	})
	if res[0] != nil || res[1] != nil {
		t.Fatalf("got results %v, want nil, nil", res)
	}
	if got := h.f.AppliedIndex(); got != 3 {
		t.Fatalf("applied index: got %d, want 3", got)
	}
	if h.digest() != before {
		t.Fatalf("skipped entries changed the state")
	}
}

func TestApplyBatchResultsAndCallbacks(t *testing.T) {
	var gotMsgs []Message
	var gotDeleted []string
	path := filepath.Join(t.TempDir(), "fsm.db")
	f := mustOpen(t, path, Options{
		OnCommit:       func(m []Message) { gotMsgs = append(gotMsgs, m...) },
		OnUsersDeleted: func(u []string) { gotDeleted = append(gotDeleted, u...) },
	})
	h := &harness{t: t, f: f, path: path, now: t0}
	logs := []*raft.Log{
		h.next(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "a"}}),
		h.next(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "b"}}),
		h.next(CmdSendMessage, nil, &SendMessage{MsgID: "m1", SendID: "a", RecvID: "b", SessionType: SessionSingle}),
		h.next(CmdSendMessage, nil, &SendMessage{MsgID: "m2", SendID: "a", RecvID: "zz", SessionType: SessionSingle}),
		h.next(CmdSendMessage, nil, &SendMessage{MsgID: "m3", SendID: "b", RecvID: "a", SessionType: SessionSingle}),
		h.next(CmdDeleteUsers, nil, &DeleteUsers{UIDs: []string{"b", "nobody"}}),
	}
	res := f.ApplyBatch(logs)
	if len(res) != len(logs) {
		t.Fatalf("got %d results, want %d", len(res), len(logs))
	}
	if r := asResult(t, res[2]); r.Seq != 1 || r.MsgID != "m1" {
		t.Fatalf("send m1: got %+v, want seq 1", r)
	}
	wantErr(t, asResult(t, res[3]), ErrUserNotFound)
	if r := asResult(t, res[4]); r.Seq != 2 {
		t.Fatalf("send m3: got seq %d, want 2", r.Seq)
	}
	if r := asResult(t, res[5]); !reflect.DeepEqual(r.Failed, []string{"nobody"}) {
		t.Fatalf("delete: got failed %v, want [nobody]", r.Failed)
	}
	if len(gotMsgs) != 2 || gotMsgs[0].MsgID != "m1" || gotMsgs[1].MsgID != "m3" {
		t.Fatalf("OnCommit: got %+v, want m1, m3", gotMsgs)
	}
	if !reflect.DeepEqual(gotDeleted, []string{"b"}) {
		t.Fatalf("OnUsersDeleted: got %v, want [b]", gotDeleted)
	}
	if got := f.AppliedIndex(); got != 6 {
		t.Fatalf("applied index: got %d, want 6", got)
	}
}

func TestReplayAfterReopenSkipsApplied(t *testing.T) {
	h := newHarness(t)
	var logs []*raft.Log
	logs = append(logs,
		h.next(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "a"}}),
		h.next(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "b"}}))
	for i := 0; i < 5; i++ {
		logs = append(logs, h.next(CmdSendMessage, nil, &SendMessage{
			MsgID: fmt.Sprintf("m%d", i+3), SendID: "a", RecvID: "b", SessionType: SessionSingle}))
	}
	for _, l := range logs[:5] {
		asResult(t, h.f.Apply(l))
	}
	if err := h.f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	f := mustOpen(t, h.path, Options{})
	if got := f.AppliedIndex(); got != 5 {
		t.Fatalf("applied index after reopen: got %d, want 5", got)
	}
	res := f.ApplyBatch(logs[2:])
	for i, r := range res[:3] {
		if r != nil {
			t.Errorf("entry %d: got %+v, want nil (skipped)", i+3, r)
		}
	}
	for i, r := range res[3:] {
		if got := asResult(t, r); got.Seq != uint64(i+4) {
			t.Errorf("entry %d: got seq %d, want %d", i+6, got.Seq, i+4)
		}
	}
	msgs, err := f.PullMessages(SingleConversationID("a", "b"), 1, 100, 0)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if len(msgs) != 5 {
		t.Fatalf("got %d messages, want 5 (no double apply)", len(msgs))
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("m%d", i+3); m.MsgID != want || m.Seq != uint64(i+1) {
			t.Errorf("message %d: got %s seq %d, want %s seq %d", i, m.MsgID, m.Seq, want, i+1)
		}
	}
	// A batch that is entirely old is a no-op.
	if res := f.ApplyBatch(logs[:2]); res[0] != nil || res[1] != nil {
		t.Fatalf("old batch: got %v, want nils", res)
	}
}

func TestWaitApplied(t *testing.T) {
	h := newHarness(t)
	done := make(chan error, 1)
	go func() { done <- h.f.WaitApplied(context.Background(), 2) }()
	h.register("a")
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(2) returned %v at index 1", err)
	case <-time.After(20 * time.Millisecond):
	}
	h.register("b")
	if err := <-done; err != nil {
		t.Fatalf("WaitApplied: got %v, want nil", err)
	}
	if err := h.f.WaitApplied(context.Background(), 1); err != nil {
		t.Fatalf("WaitApplied of a past index: got %v, want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := h.f.WaitApplied(ctx, 99); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied past deadline: got %v, want %v", err, context.DeadlineExceeded)
	}
}

func TestReadsAfterClose(t *testing.T) {
	h := newHarness(t)
	if err := h.f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := h.f.AllUIDs(); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want %v", err, ErrClosed)
	}
}

// script is a mixed workload, as log entries, for tests that compare two ways of applying.
func script(h *harness) []*raft.Log {
	send := func(id, from, to string, s int32) *SendMessage {
		return &SendMessage{MsgID: id, SendID: from, RecvID: to, SessionType: s}
	}
	return []*raft.Log{
		h.next(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "a"}}),
		h.next(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "b"}}),
		h.next(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "c"}}),
		h.next(CmdImportFriends, nil, &ImportFriends{OwnerUID: "a", FriendUIDs: []string{"b", "c", "zz"}}),
		h.next(CmdCreateGroup, idemKey("g"), &CreateGroup{GroupID: "g", Name: "g", Members: []MemberSpec{{UID: "a", Role: RoleOwner}, {UID: "b"}}}),
		h.next(CmdSendMessage, idemKey("m1"), send("m1", "a", "g", SessionGroup)),
		h.next(CmdSendMessage, idemKey("m1"), send("m1", "a", "g", SessionGroup)),
		h.next(CmdAddBlacklist, nil, &AddBlacklist{OwnerUID: "c", UID: "a"}),
		h.next(CmdSendMessage, nil, send("m2", "a", "c", SessionSingle)),
		h.next(CmdSendMessage, nil, send("m3", "c", "a", SessionSingle)),
		h.next(CmdInviteToGroup, nil, &InviteToGroup{GroupID: "g", UIDs: []string{"c", "b"}}),
		h.next(CmdKickFromGroup, nil, &KickFromGroup{GroupID: "g", UIDs: []string{"b"}}),
		h.next(CmdDeleteUsers, nil, &DeleteUsers{UIDs: []string{"a"}}),
		h.next(CmdPruneIdempotency, nil, &PruneIdempotency{Before: t0.Add(6 * time.Second).UnixNano()}),
	}
}

func TestBatchAndSingleApplyAgree(t *testing.T) {
	one, batched := newHarness(t), newHarness(t)
	logs := script(one)
	var singles []interface{}
	for _, l := range logs {
		singles = append(singles, one.f.Apply(l))
	}
	batches := append(batched.f.ApplyBatch(logs[:5]), batched.f.ApplyBatch(logs[5:])...)
	if !reflect.DeepEqual(singles, batches) {
		t.Fatalf("results differ:\nsingle  %+v\nbatched %+v", singles, batches)
	}
	if one.digest() != batched.digest() {
		t.Fatalf("digests differ between single and batched apply")
	}
}

func TestReadsDuringApply(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	logs := make([]*raft.Log, 100)
	for i := range logs {
		logs[i] = h.next(CmdSendMessage, nil, &SendMessage{MsgID: fmt.Sprint(i), SendID: "a", RecvID: "b", SessionType: SessionSingle})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, l := range logs {
			h.f.Apply(l)
		}
	}()
	var last uint64
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		seqs, err := h.f.NewestSeqs("a")
		if err != nil {
			t.Fatalf("NewestSeqs: %v", err)
		}
		if len(seqs) == 1 {
			if seqs[0].MaxSeq < last {
				t.Fatalf("max seq went back from %d to %d", last, seqs[0].MaxSeq)
			}
			last = seqs[0].MaxSeq
			msgs, err := h.f.PullMessages(seqs[0].ConversationID, 1, last, 0)
			if err != nil || uint64(len(msgs)) != last {
				t.Fatalf("pull up to %d: got %d messages (err %v)", last, len(msgs), err)
			}
		}
	}
}

func TestValidateRefusesWhatApplyWouldPanicOn(t *testing.T) {
	good := mustEncode(t, CmdSendMessage, nil, &SendMessage{MsgID: "m", SendID: "a", RecvID: "b", SessionType: 1, ContentType: 101, Content: []byte(`{"text":"x"}`)})
	if err := Validate(good); err != nil {
		t.Fatalf("valid command refused: %v", err)
	}
	optional := append([]byte{byte(IgnoreUnknownFlag | 99), 0}, 0xc0)
	if err := Validate(optional); err != nil {
		t.Fatalf("unknown optional command refused: %v", err)
	}
	for name, cmd := range map[string][]byte{
		"empty":        nil,
		"short key":    {byte(CmdSendMessage), 5, 1, 2},
		"unknown type": {99, 0, 0xc0},
		"garbage body": append([]byte{byte(CmdSendMessage), 0}, 0xc1, 0xff, 0x00),
		"wrong shape":  append([]byte{byte(CmdSendMessage), 0}, 0xa3, 'a', 'b', 'c'),
	} {
		t.Run(name, func(t *testing.T) {
			if err := Validate(cmd); err == nil {
				t.Fatalf("Validate accepted %x", cmd)
			}
		})
	}
}
