package fsm

import (
	"fmt"
	"path/filepath"
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

// BenchmarkApplyBatch measures one raft batch of 256 group sends: one transaction, one
// fsync. msgs/s is the figure to compare.
func BenchmarkApplyBatch(b *testing.B) {
	const batch = 256
	f, err := Open(filepath.Join(b.TempDir(), "fsm.db"), Options{})
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	defer f.Close()
	index := uint64(0)
	at := time.Unix(0, 0)
	entry := func(typ CommandType, body interface{}) *raft.Log {
		index++
		at = at.Add(time.Millisecond)
		return &raft.Log{Index: index, Data: mustEncode(b, typ, nil, body), AppendedAt: at}
	}
	f.ApplyBatch([]*raft.Log{
		entry(CmdRegisterUser, &RegisterUser{User: User{UID: "alice"}}),
		entry(CmdCreateGroup, &CreateGroup{GroupID: "g", Name: "g", Members: []MemberSpec{{UID: "alice", Role: RoleOwner}}}),
	})
	data := make([][]byte, batch)
	for i := range data {
		data[i] = mustEncode(b, CmdSendMessage, nil, benchSend(i))
	}
	logs := make([]*raft.Log, batch)
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
