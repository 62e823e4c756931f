package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func TestSendSingle(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	cmd := &SendMessage{MsgID: "m1", SendID: "b", RecvID: "a", SenderNickName: "Bee", SessionType: SessionSingle,
		ContentType: 101, Content: []byte(`{"text":"hi"}`), ForceList: []string{"a"}}
	r := h.mustApply(CmdSendMessage, cmd)
	want := Result{MsgID: "m1", SendTime: h.now.UnixNano(), Seq: 1, ConversationID: "si_a_b"}
	if !reflect.DeepEqual(*r, want) {
		t.Fatalf("got %+v, want %+v", *r, want)
	}
	msgs, err := h.f.PullMessages("si_a_b", 1, 1, 0)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	wantMsg := Message{ConversationID: "si_a_b", Seq: 1, MsgID: "m1", SendID: "b", RecvID: "a", SenderNickName: "Bee",
		SessionType: SessionSingle, ContentType: 101, Content: cmd.Content, ForceList: []string{"a"}, SendTime: want.SendTime}
	if len(msgs) != 1 || !reflect.DeepEqual(msgs[0], wantMsg) {
		t.Fatalf("pull: got %+v, want %+v", msgs, wantMsg)
	}
	for _, uid := range []string{"a", "b"} {
		seqs, _ := h.f.NewestSeqs(uid)
		if want := []ConversationSeq{{ConversationID: "si_a_b", MaxSeq: 1}}; !reflect.DeepEqual(seqs, want) {
			t.Fatalf("%s's conversations: got %v, want %v", uid, seqs, want)
		}
	}
}

func TestSendToSelf(t *testing.T) {
	h := newHarness(t)
	h.register("a")
	if r := h.send("a", "a", SessionSingle, "note"); r.Err != "" || r.ConversationID != "si_a_a" {
		t.Fatalf("got %+v, want success in si_a_a", r)
	}
	if seqs, _ := h.f.NewestSeqs("a"); !reflect.DeepEqual(seqs, []ConversationSeq{{ConversationID: "si_a_a", MaxSeq: 1}}) {
		t.Fatalf("got %v, want [si_a_a 1]", seqs)
	}
}

func TestSendFailures(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c")
	h.mustApply(CmdAddBlacklist, &AddBlacklist{OwnerUID: "b", UID: "a"})
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "g", Name: "g", Members: []MemberSpec{{UID: "b", Role: RoleOwner}}})
	for _, tc := range []struct {
		name       string
		from, to   string
		session    int32
		want       error
		wantToWork bool
	}{
		{name: "unknown sender", from: "zz", to: "a", session: SessionSingle, want: ErrUserNotFound},
		{name: "unknown receiver", from: "a", to: "zz", session: SessionSingle, want: ErrUserNotFound},
		{name: "blocked", from: "a", to: "b", session: SessionSingle, want: ErrBlocked},
		{name: "blocker may still send", from: "b", to: "a", session: SessionSingle, wantToWork: true},
		{name: "unknown group", from: "a", to: "zz", session: SessionGroup, want: ErrGroupNotFound},
		{name: "not a member", from: "c", to: "g", session: SessionGroup, want: ErrNotGroupMember},
		{name: "unknown group sender", from: "zz", to: "g", session: SessionGroup, want: ErrUserNotFound},
		{name: "bad session type", from: "a", to: "c", session: 3, want: ErrInvalidArgument},
		{name: "NUL in recvID", from: "a", to: "c\x00", session: SessionSingle, want: ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.digest()
			r := h.send(tc.from, tc.to, tc.session, "x")
			if tc.wantToWork {
				if r.Err != "" {
					t.Fatalf("got %q, want success", r.Err)
				}
				return
			}
			wantErr(t, r, tc.want)
			if h.digest() != before {
				t.Fatalf("a failed send changed the state")
			}
		})
	}
}

func TestSeqGapFreeAndSendTimeNeverDecreases(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	times := []time.Time{t0.Add(10 * time.Second), t0.Add(5 * time.Second), {}, t0.Add(20 * time.Second), t0.Add(15 * time.Second)}
	wantTimes := []time.Time{times[0], times[0], times[0], times[3], times[3]}
	for i, at := range times {
		// A failed send between two good ones must not use up a seq.
		wantErr(t, h.send("a", "zz", SessionSingle, "lost"), ErrUserNotFound)
		l := h.next(CmdSendMessage, nil, &SendMessage{MsgID: fmt.Sprint(i), SendID: "a", RecvID: "b", SessionType: SessionSingle})
		l.AppendedAt = at
		r := asResult(t, h.f.Apply(l))
		if r.Seq != uint64(i+1) || r.SendTime != wantTimes[i].UnixNano() {
			t.Fatalf("send %d: got seq %d time %d, want seq %d time %d", i, r.Seq, r.SendTime, i+1, wantTimes[i].UnixNano())
		}
	}
	msgs, _ := h.f.PullMessages("si_a_b", 0, 100, 0)
	if len(msgs) != len(times) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(times))
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Seq != msgs[i-1].Seq+1 || msgs[i].SendTime < msgs[i-1].SendTime {
			t.Fatalf("message %d: seq %d time %d after seq %d time %d", i, msgs[i].Seq, msgs[i].SendTime, msgs[i-1].Seq, msgs[i-1].SendTime)
		}
	}
}

func TestGroupMessageStoredOnce(t *testing.T) {
	h := newHarness(t)
	members := []MemberSpec{{UID: "u00", Role: RoleOwner}}
	h.register("u00")
	for i := 1; i < 50; i++ {
		uid := fmt.Sprintf("u%02d", i)
		h.register(uid)
		members = append(members, MemberSpec{UID: uid})
	}
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "g", Name: "big", Members: members})
	r := h.send("u07", "g", SessionGroup, "hello all")
	if r.Err != "" || r.ConversationID != "sg_g" || r.Seq != 1 {
		t.Fatalf("got %+v, want seq 1 in sg_g", r)
	}
	var stored int
	if err := h.f.view(func(tx *txn) error { stored = tx.msgLog.Stats().KeyN; return nil }); err != nil {
		t.Fatalf("view: %v", err)
	}
	if stored != 1 {
		t.Fatalf("got %d stored messages, want 1 for a 50-member group", stored)
	}
	for _, m := range members {
		seqs, _ := h.f.NewestSeqs(m.UID)
		if !reflect.DeepEqual(seqs, []ConversationSeq{{ConversationID: "sg_g", MaxSeq: 1}}) {
			t.Fatalf("%s's conversations: got %v, want [sg_g 1]", m.UID, seqs)
		}
	}
}

func TestNewestSeqs(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c")
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "quiet", Name: "q", Members: []MemberSpec{{UID: "a", Role: RoleOwner}}})
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "busy", Name: "b", Members: []MemberSpec{{UID: "a", Role: RoleOwner}}})
	h.send("a", "busy", SessionGroup, "1")
	h.send("a", "busy", SessionGroup, "2")
	h.send("c", "a", SessionSingle, "3")
	h.send("a", "b", SessionSingle, "4")
	seqs, err := h.f.NewestSeqs("a")
	if err != nil {
		t.Fatalf("NewestSeqs: %v", err)
	}
	want := []ConversationSeq{{ConversationID: "sg_busy", MaxSeq: 2}, {ConversationID: "sg_quiet", MaxSeq: 0}, {ConversationID: "si_a_b", MaxSeq: 1}, {ConversationID: "si_a_c", MaxSeq: 1}}
	if !reflect.DeepEqual(seqs, want) {
		t.Fatalf("got %v, want %v", seqs, want)
	}
	if seqs, err := h.f.NewestSeqs("nobody"); seqs != nil || err != nil {
		t.Fatalf("unknown uid: got %v, %v, want nil, nil", seqs, err)
	}
}

func TestPullMessages(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "b_c")
	for i := 0; i < 10; i++ {
		h.send("a", "b", SessionSingle, fmt.Sprint(i))
	}
	// si_a_b_c starts with si_a_b: the NUL separator keeps the two apart.
	h.send("a", "b_c", SessionSingle, "other")
	seqsOf := func(msgs []Message) []uint64 {
		var out []uint64
		for _, m := range msgs {
			out = append(out, m.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		begin, end uint64
		limit      int
		want       []uint64
	}{
		{"range", 3, 5, 0, []uint64{3, 4, 5}},
		{"limit", 3, 9, 2, []uint64{3, 4}},
		{"begin 0 means 1", 0, 2, 0, []uint64{1, 2}},
		{"end past the last", 9, 100, 0, []uint64{9, 10}},
		{"end before begin", 5, 4, 0, nil},
		{"past the end", 11, 20, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := h.f.PullMessages("si_a_b", tc.begin, tc.end, tc.limit)
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if got := seqsOf(msgs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got seqs %v, want %v", got, tc.want)
			}
		})
	}
	if msgs, _ := h.f.PullMessages("si_a_b_c", 0, 100, 0); len(msgs) != 1 || msgs[0].RecvID != "b_c" {
		t.Fatalf("si_a_b_c: got %+v, want its one message", msgs)
	}
	if msgs, err := h.f.PullMessages("unknown", 0, 100, 0); msgs != nil || err != nil {
		t.Fatalf("unknown conversation: got %v, %v, want nil, nil", msgs, err)
	}
	if _, err := h.f.PullMessages("si_a\x00b", 0, 100, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("NUL in conversationID: got %v, want %v", err, ErrInvalidArgument)
	}
}

func TestPullMessagesClampsLimit(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	logs := make([]*raft.Log, MaxPull+5)
	for i := range logs {
		logs[i] = h.next(CmdSendMessage, nil, &SendMessage{MsgID: fmt.Sprint(i), SendID: "a", RecvID: "b", SessionType: SessionSingle})
	}
	h.f.ApplyBatch(logs)
	for _, limit := range []int{0, -1, MaxPull + 100} {
		msgs, err := h.f.PullMessages("si_a_b", 1, uint64(len(logs)), limit)
		if err != nil || len(msgs) != MaxPull {
			t.Fatalf("limit %d: got %d messages (err %v), want %d", limit, len(msgs), err, MaxPull)
		}
	}
}

func TestSingleConversationIDCollisionIsRefused(t *testing.T) {
	h := newHarness(t)
	h.register("a_b", "c", "a", "b_c")
	first := h.send("a_b", "c", SessionSingle, "x")
	if first.Err != "" || first.ConversationID != "si_a_b_c" {
		t.Fatalf("got %+v, want si_a_b_c", first)
	}
	before := h.digest()
	wantErr(t, h.send("a", "b_c", SessionSingle, "y"), ErrConversationTaken)
	if h.digest() != before {
		t.Fatal("a refused send changed the state")
	}
	// The first pair goes on.
	if r := h.send("c", "a_b", SessionSingle, "z"); r.Err != "" || r.Seq != 2 {
		t.Fatalf("got %+v, want seq 2", r)
	}
}

// Seqs of a conversation are found through full chunks in msgidx and the tail in the
// conversation record, interleaved with other conversations' messages in msglog.
func TestPullMessagesAcrossChunks(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c")
	const n = 3*seqChunk + 5
	for i := 1; i <= n; i++ {
		if r := h.send("a", "b", SessionSingle, fmt.Sprint(i)); r.Seq != uint64(i) {
			t.Fatalf("send %d: got %+v", i, r)
		}
		h.send("a", "c", SessionSingle, "other")
	}
	conv := SingleConversationID("a", "b")
	for _, tc := range []struct {
		begin, end uint64
		limit      int
		want       []int
	}{
		{1, n, 0, seqRange(1, n)},
		{seqChunk, seqChunk + 1, 0, seqRange(seqChunk, seqChunk+1)},
		{2*seqChunk - 3, 3*seqChunk + 2, 0, seqRange(2*seqChunk-3, 3*seqChunk+2)},
		{3 * seqChunk, n + 10, 0, seqRange(3*seqChunk, n)},
		{5, n, 7, seqRange(5, 11)},
		{n + 1, n + 5, 0, nil},
	} {
		msgs, err := h.f.PullMessages(conv, tc.begin, tc.end, tc.limit)
		if err != nil {
			t.Fatalf("pull %d..%d: %v", tc.begin, tc.end, err)
		}
		var got []int
		for _, m := range msgs {
			if m.ConversationID != conv || string(m.Content) != fmt.Sprintf(`{"text":"%d"}`, m.Seq) {
				t.Fatalf("pull %d..%d: got message %+v", tc.begin, tc.end, m)
			}
			got = append(got, int(m.Seq))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("pull %d..%d limit %d: got seqs %v, want %v", tc.begin, tc.end, tc.limit, got, tc.want)
		}
	}
}

func seqRange(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// A file written with the conversation-ordered layout (msgs) is converted when opened:
// every message is there in seq order, and sends go on from MaxSeq.
func TestOldMessageLayoutConverted(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c")
	const n = seqChunk + 3
	for i := 1; i <= n; i++ {
		h.send("a", "b", SessionSingle, fmt.Sprint(i))
		h.send("c", "a", SessionSingle, "x")
	}
	want, err := h.f.PullMessages(SingleConversationID("a", "b"), 1, n, 0)
	if err != nil || len(want) != n {
		t.Fatalf("pull: got %d messages, %v", len(want), err)
	}
	if err := h.f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Rewrite the messages the old way: msgs keyed by conversation and seq, no index.
	db, err := bolt.Open(h.path, 0o600, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		old, err := tx.CreateBucket(bktOldMsgs)
		if err != nil {
			return err
		}
		w := newTxn(tx, nil)
		if err := w.msgLog.ForEach(func(_, v []byte) error {
			var m Message
			if err := DecodeValue(v, &m); err != nil {
				return err
			}
			k := append(append([]byte(m.ConversationID), 0), logKey(m.Seq)...)
			return old.Put(k, bytes.Clone(v))
		}); err != nil {
			return err
		}
		for _, b := range [][]byte{bktMsgLog, bktMsgIdx} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return w.convs.ForEach(func(k, v []byte) error {
			var c convRec
			if err := DecodeValue(v, &c); err != nil {
				return err
			}
			c.Tail = nil
			return put(w.convs, bytes.Clone(k), &c)
		})
	})
	if err != nil {
		t.Fatalf("write old layout: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	h.f = mustOpen(t, h.path, Options{})
	got, err := h.f.PullMessages(SingleConversationID("a", "b"), 1, n, 0)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after conversion: got %d messages (%v), want the %d from before", len(got), err, n)
	}
	if r := h.send("a", "b", SessionSingle, "next"); r.Seq != n+1 {
		t.Fatalf("send after conversion: got %+v, want seq %d", r, n+1)
	}
	if got, _ := h.f.PullMessages(SingleConversationID("a", "b"), n, n+1, 0); len(got) != 2 || got[1].Seq != n+1 {
		t.Fatalf("pull after conversion: got %+v", got)
	}
}
