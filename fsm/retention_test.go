package fsm

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// logged applies entries through h and keeps them, so a test can replay the same log into
// another FSM.
type logged struct {
	*harness
	entries []*raft.Log
}

func (l *logged) apply(typ CommandType, body interface{}) *Result {
	l.t.Helper()
	e := l.next(typ, nil, body)
	l.entries = append(l.entries, e)
	r := asResult(l.t, l.f.Apply(e))
	if r.Err != "" {
		l.t.Fatalf("%s: got error %q, want success", typ, r.Err)
	}
	return r
}

func (l *logged) send(from, to string, session int32) *Result {
	l.t.Helper()
	return l.apply(CmdSendMessage, &SendMessage{MsgID: fmt.Sprintf("msg%d", l.index+1), SendID: from, RecvID: to,
		SessionType: session, ContentType: 101, Content: []byte(`{"text":"x"}`)})
}

// pruneAt applies PruneMessages whose cutoff (its log time minus the retention) is cutoff.
// The harness's next entry is one second after the last.
func (l *logged) pruneAt(cutoff int64, limit int) *Result {
	l.t.Helper()
	at := l.now.Add(time.Second).UnixNano()
	return l.apply(CmdPruneMessages, &PruneMessages{Retention: at - cutoff, Limit: limit})
}

func mustPull(t *testing.T, f *FSM, conv string, begin, end uint64) []uint64 {
	t.Helper()
	msgs, err := f.PullMessages(conv, begin, end, 0)
	if err != nil {
		t.Fatalf("pull %s %d..%d: %v", conv, begin, end, err)
	}
	seqs := []uint64{}
	for _, m := range msgs {
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

func seqsFromTo(from, to uint64) []uint64 {
	out := []uint64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func mustMinSeq(t *testing.T, f *FSM, conv string) uint64 {
	t.Helper()
	m, err := f.MinSeq(conv)
	if err != nil {
		t.Fatalf("min seq of %s: %v", conv, err)
	}
	return m
}

// newRetentionLog registers a and b, makes group g of both, and sends n single and n group
// messages, interleaved; it returns the send times of the single chat's seqs (index seq-1).
func newRetentionLog(t *testing.T, n int) (*logged, []int64) {
	l := &logged{harness: newHarness(t)}
	l.apply(CmdRegisterUser, &RegisterUser{User: User{UID: "a"}})
	l.apply(CmdRegisterUser, &RegisterUser{User: User{UID: "b"}})
	l.apply(CmdCreateGroup, &CreateGroup{GroupID: "g", Name: "g",
		Members: []MemberSpec{{UID: "a", Role: RoleOwner}, {UID: "b"}}})
	var times []int64
	for range n {
		times = append(times, l.send("a", "b", SessionSingle).SendTime)
		l.send("b", "g", SessionGroup)
	}
	return l, times
}

func TestPruneMessagesByLogTime(t *testing.T) {
	l, times := newRetentionLog(t, 40)
	// Everything the single chat sent before its seq 21 is older than the cutoff, and so
	// are the group's first 20 (each was sent right after the single message of its round).
	r := l.pruneAt(times[20], 0)
	if r.Pruned != 40 {
		t.Fatalf("pruned: got %d, want 40", r.Pruned)
	}
	for _, conv := range []string{"si_a_b", "sg_g"} {
		if got := mustMinSeq(t, l.f, conv); got != 21 {
			t.Fatalf("%s min seq: got %d, want 21", conv, got)
		}
		if got := mustPull(t, l.f, conv, 1, 100); !reflect.DeepEqual(got, seqsFromTo(21, 40)) {
			t.Fatalf("%s pull 1..100: got %v, want 21..40", conv, got)
		}
		if got := mustPull(t, l.f, conv, 3, 9); len(got) != 0 {
			t.Fatalf("%s pull of gone seqs: got %v, want none", conv, got)
		}
		if got := mustPull(t, l.f, conv, 20, 22); !reflect.DeepEqual(got, []uint64{21, 22}) {
			t.Fatalf("%s pull 20..22: got %v, want [21 22]", conv, got)
		}
	}
	// MaxSeq does not move, and the index chunk of seqs 1..16 is gone, that of 17..32 not.
	seqs, err := l.f.NewestSeqs("a")
	if err != nil || len(seqs) != 2 || seqs[0].MaxSeq != 40 || seqs[1].MaxSeq != 40 {
		t.Fatalf("newest seqs: got %v, %v; want both conversations at 40", seqs, err)
	}
	err = l.f.view(func(r *txn) error {
		if r.msgIdx.Get(chunkKey("si_a_b", 0)) != nil || r.msgIdx.Get(chunkKey("si_a_b", 1)) == nil {
			t.Errorf("chunks: got 0 present=%v 1 present=%v, want 0 gone and 1 kept",
				r.msgIdx.Get(chunkKey("si_a_b", 0)) != nil, r.msgIdx.Get(chunkKey("si_a_b", 1)) != nil)
		}
		if n := r.msgLog.Stats().KeyN; n != 40 {
			t.Errorf("msglog keys: got %d, want 40", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// An unknown conversation and one never pruned answer 0.
	if got := mustMinSeq(t, l.f, "si_x_y"); got != 0 {
		t.Fatalf("unknown conversation min seq: got %d, want 0", got)
	}
}

func TestPruneMessagesBoundedSteps(t *testing.T) {
	l, times := newRetentionLog(t, 20)
	cutoff := times[15] // seqs 1..15 of each conversation: 30 messages
	var got []int
	for {
		r := l.pruneAt(cutoff, 7)
		got = append(got, r.Pruned)
		if r.Pruned < 7 {
			break
		}
	}
	if want := []int{7, 7, 7, 7, 2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("per command: got %v, want %v", got, want)
	}
	for _, conv := range []string{"si_a_b", "sg_g"} {
		if got := mustPull(t, l.f, conv, 0, 100); !reflect.DeepEqual(got, seqsFromTo(16, 20)) {
			t.Fatalf("%s: got %v, want 16..20", conv, got)
		}
	}
	// A limit above the maximum is the maximum, not unbounded.
	if r := l.pruneAt(l.now.UnixNano()+1, MaxPruneMessages+1); r.Pruned != 10 {
		t.Fatalf("rest: got %d, want 10", r.Pruned)
	}
}

func TestPruneMessagesNothingToDo(t *testing.T) {
	l, times := newRetentionLog(t, 3)
	for _, tc := range []struct {
		name string
		c    PruneMessages
	}{
		{"cutoff before every message", PruneMessages{Retention: l.now.Add(time.Second).UnixNano() - times[0]}},
		{"zero retention", PruneMessages{}},
		{"negative retention", PruneMessages{Retention: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := l.apply(CmdPruneMessages, &tc.c); r.Pruned != 0 {
				t.Fatalf("got %d pruned, want 0", r.Pruned)
			}
		})
	}
	// An entry without log time removes nothing.
	e := &raft.Log{Index: l.index + 1, Type: raft.LogCommand, Data: mustEncode(t, CmdPruneMessages, nil, &PruneMessages{Retention: 1})}
	if r := asResult(t, l.f.Apply(e)); r.Pruned != 0 {
		t.Fatalf("no log time: got %d pruned, want 0", r.Pruned)
	}
	l.index++
	if got := mustPull(t, l.f, "si_a_b", 1, 10); !reflect.DeepEqual(got, seqsFromTo(1, 3)) {
		t.Fatalf("got %v, want 1..3", got)
	}
}

func TestPrunedConversationGoesOnWithoutGap(t *testing.T) {
	l, _ := newRetentionLog(t, 18)
	r := l.pruneAt(l.now.UnixNano()+1, 0)
	if r.Pruned != 36 {
		t.Fatalf("pruned: got %d, want 36", r.Pruned)
	}
	if got := mustMinSeq(t, l.f, "si_a_b"); got != 19 {
		t.Fatalf("min seq: got %d, want 19 (MaxSeq+1: all gone)", got)
	}
	if got := mustPull(t, l.f, "si_a_b", 1, 100); len(got) != 0 {
		t.Fatalf("pull: got %v, want none", got)
	}
	// The next sends continue at 19, 20, ... and cross into the next index chunk.
	for want := uint64(19); want <= 40; want++ {
		if r := l.send("b", "a", SessionSingle); r.Seq != want {
			t.Fatalf("next send: got seq %d, want %d", r.Seq, want)
		}
	}
	if got := mustPull(t, l.f, "si_a_b", 1, 100); !reflect.DeepEqual(got, seqsFromTo(19, 40)) {
		t.Fatalf("pull after new sends: got %v, want 19..40", got)
	}
	// Pruning again later removes the new ones as well, leaving the index consistent.
	l.pruneAt(l.now.UnixNano()+1, 0)
	l.send("a", "b", SessionSingle)
	if got := mustPull(t, l.f, "si_a_b", 1, 100); !reflect.DeepEqual(got, []uint64{41}) {
		t.Fatalf("pull after the second prune: got %v, want [41]", got)
	}
	if got := mustMinSeq(t, l.f, "si_a_b"); got != 41 {
		t.Fatalf("min seq: got %d, want 41", got)
	}
}

func TestPruneMessagesSnapshotAndReplay(t *testing.T) {
	l, times := newRetentionLog(t, 30)
	l.pruneAt(times[10], 9)
	l.pruneAt(times[10], 9)
	l.send("a", "b", SessionSingle)
	l.pruneAt(times[25], 0)
	pulls := func(f *FSM) map[string]interface{} {
		out := map[string]interface{}{}
		for _, conv := range []string{"si_a_b", "sg_g"} {
			msgs, err := f.PullMessages(conv, 0, 1000, 0)
			if err != nil {
				t.Fatalf("pull %s: %v", conv, err)
			}
			out[conv] = msgs
			out[conv+" min"] = mustMinSeq(t, f, conv)
		}
		return out
	}
	want := pulls(l.f)
	if got := want["si_a_b min"]; got != uint64(26) {
		t.Fatalf("min seq: got %v, want 26", got)
	}

	restored := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	mustRestore(t, restored, mustState(t, l.f)) // what a follower installing a snapshot receives
	replayed := mustOpen(t, filepath.Join(t.TempDir(), "fsm.db"), Options{})
	for _, e := range l.entries {
		replayed.Apply(e)
	}
	for name, f := range map[string]*FSM{"restored": restored, "replayed": replayed} {
		if got := pulls(f); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: reads differ:\ngot  %v\nwant %v", name, got, want)
		}
		if got, want := mustDigest(t, f), l.digest(); got != want {
			t.Fatalf("%s: digest got %s, want %s", name, got, want)
		}
	}
}

func TestOldestMessageTime(t *testing.T) {
	h := newHarness(t)
	if _, ok, err := h.f.OldestMessageTime(); ok || err != nil {
		t.Fatalf("empty: got ok=%v err=%v, want none", ok, err)
	}
	l, times := newRetentionLog(t, 3)
	if got, ok, err := l.f.OldestMessageTime(); !ok || err != nil || got != times[0] {
		t.Fatalf("got %d %v %v, want %d", got, ok, err, times[0])
	}
	l.pruneAt(times[1], 0)
	if got, ok, _ := l.f.OldestMessageTime(); !ok || got != times[1] {
		t.Fatalf("after prune: got %d, want %d", got, times[1])
	}
}
