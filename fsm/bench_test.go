package fsm

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func benchSend(i int) *SendMessage {
	return &SendMessage{
		MsgID: fmt.Sprintf("%032x", i), SendID: "alice", RecvID: "g", SenderNickName: "Alice",
		SessionType: SessionGroup, ContentType: 101, Content: []byte(`{"text":"a message of ordinary length"}`),
	}
}

// benchFSM opens an FSM (synchronous commits) closed at the end of the benchmark, and a
// function that builds the next log entry.
func benchFSM(b *testing.B) (*FSM, func(CommandType, []byte, interface{}) *raft.Log) {
	f, err := Open(filepath.Join(b.TempDir(), "fsm.db"), Options{})
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	b.Cleanup(func() { _ = f.Close() })
	index := uint64(0)
	at := time.Unix(0, 0)
	return f, func(typ CommandType, key []byte, body interface{}) *raft.Log {
		index++
		at = at.Add(time.Microsecond)
		return &raft.Log{Index: index, Data: mustEncode(b, typ, key, body), AppendedAt: at}
	}
}

// BenchmarkApplyBatch measures one raft batch of 256 group sends: one transaction, one
// fsync. msgs/s is the figure to compare.
func BenchmarkApplyBatch(b *testing.B) {
	const batch = 256
	f, entry := benchFSM(b)
	f.ApplyBatch([]*raft.Log{
		entry(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "alice"}}),
		entry(CmdCreateGroup, nil, &CreateGroup{GroupID: "g", Name: "g", Members: []MemberSpec{{UID: "alice", Role: RoleOwner}}}),
	})
	data := make([][]byte, batch)
	for i := range data {
		data[i] = mustEncode(b, CmdSendMessage, nil, benchSend(i))
	}
	logs := make([]*raft.Log, batch)
	// The entries are encoded above, outside the timing; they follow the two set-up ones.
	index, at := uint64(2), time.Unix(1, 0)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range logs {
			index++
			at = at.Add(time.Microsecond)
			logs[i] = &raft.Log{Index: index, Data: data[i], AppendedAt: at}
		}
		f.ApplyBatch(logs)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkApplyPacked is BenchmarkApplyBatch with the 256 sends packed into 16 CmdBatch
// entries of 16, as a leader packs them.
func BenchmarkApplyPacked(b *testing.B) {
	const batch, per = 256, 16
	f, entry := benchFSM(b)
	f.ApplyBatch([]*raft.Log{
		entry(CmdRegisterUser, nil, &RegisterUser{User: User{UID: "alice"}}),
		entry(CmdCreateGroup, nil, &CreateGroup{GroupID: "g", Name: "g", Members: []MemberSpec{{UID: "alice", Role: RoleOwner}}}),
	})
	data := make([][]byte, batch/per)
	for i := range data {
		cmds := make([][]byte, per)
		for j := range cmds {
			cmds[j] = mustEncode(b, CmdSendMessage, nil, benchSend(i*per+j))
		}
		var err error
		if data[i], err = EncodeBatch(cmds); err != nil {
			b.Fatal(err)
		}
	}
	logs := make([]*raft.Log, len(data))
	index, at := uint64(2), time.Unix(1, 0)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range logs {
			index++
			at = at.Add(time.Microsecond)
			logs[i] = &raft.Log{Index: index, Data: data[i], AppendedAt: at}
		}
		f.ApplyBatch(logs)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkEncodeSendMessage(b *testing.B) {
	m := benchSend(1)
	key := idemKey("bench")
	b.ReportAllocs()
	for n := 0; n < b.N; n++ {
		if _, err := Encode(CmdSendMessage, key, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSendMessage(b *testing.B) {
	data := mustEncode(b, CmdSendMessage, idemKey("bench"), benchSend(1))
	b.ReportAllocs()
	for n := 0; n < b.N; n++ {
		_, _, body, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		var m SendMessage
		if err := DecodeBody(body, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplySingleChats is the FSM side of `make bench` send_single: 300-byte text
// messages spread over 1,000 single chats, each with an idempotency key, committed in
// groups of the given size (one bbolt transaction and fsync each). pages/msg is what a
// commit writes per message, the figure that decides its cost.
func BenchmarkApplySingleChats(b *testing.B) {
	for _, group := range []int{16, 64, 256, 1024} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) { benchSingleChats(b, group) })
	}
}

func benchSingleChats(b *testing.B, group int) {
	const convs = 1000
	f, next := benchFSM(b)
	var setup []*raft.Log
	for i := 0; i < 2*convs; i++ {
		setup = append(setup, next(CmdRegisterUser, nil, &RegisterUser{User: User{UID: fmt.Sprintf("u%05d", i)}}))
	}
	f.ApplyBatch(setup)
	text := []byte(`{"content":"` + strings.Repeat("x", 280) + `"}`)
	rng := rand.New(rand.NewPCG(1, 2))
	sent := 0
	send := func() *raft.Log {
		sent++
		c := rng.IntN(convs)
		key := make([]byte, IdemKeyLen)
		for i := range key {
			key[i] = byte(rng.Uint32())
		}
		return next(CmdSendMessage, key, &SendMessage{
			MsgID: fmt.Sprintf("%032x", sent), SendID: fmt.Sprintf("u%05d", 2*c), RecvID: fmt.Sprintf("u%05d", 2*c+1),
			SessionType: SessionSingle, ContentType: 101, Content: text,
		})
	}
	// Warm up: every conversation has messages, as after a while of load.
	for i := 0; i < 20; i++ {
		batch := make([]*raft.Log, 0, 1000)
		for j := 0; j < 1000; j++ {
			batch = append(batch, send())
		}
		f.ApplyBatch(batch)
	}
	batches := make([][]*raft.Log, b.N)
	for n := range batches {
		for i := 0; i < group; i++ {
			batches[n] = append(batches[n], send())
		}
	}
	before := f.db.Stats().TxStats
	b.ResetTimer()
	for _, batch := range batches {
		f.ApplyBatch(batch)
	}
	b.StopTimer()
	after := f.db.Stats().TxStats
	msgs := float64(b.N * group)
	b.ReportMetric(msgs/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(after.GetWrite()-before.GetWrite())/msgs, "writes/msg")
	b.ReportMetric(float64(after.GetSpill()-before.GetSpill())/msgs, "pages/msg")
}
