package jepsen

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// msgConv is one conversation of the message-log workload.
type msgConv struct {
	ID      string   // conversationID
	Session int      // 1 single, 2 group
	Recv    string   // the other user (single) or the groupID (group)
	Senders []string // who may send
}

// msgWorkload sends messages concurrently into a few single and group conversations,
// reads them back during the run, and reads every conversation on every node at the end.
type msgWorkload struct {
	users []string
	convs []*msgConv

	mu    sync.Mutex
	acked map[string]uint64 // highest acknowledged seq per conversation, to aim reads
	// ackedMsgs are the acknowledged sends, the targets of revokes.
	ackedMsgs []revokeTarget

	// retention is the nodes' messageRetention (0: off), for the checker.
	retention time.Duration
}

func newMsgWorkload() *msgWorkload {
	return &msgWorkload{users: []string{"msg-a", "msg-b", "msg-c", "msg-d"}, acked: map[string]uint64{}}
}

func (w *msgWorkload) name() string { return "msglog" }

func singleConv(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "si_" + a + "_" + b
}

func (w *msgWorkload) setup(c *Cluster, deadline time.Time) error {
	for _, u := range w.users {
		body := marshalBody(map[string]interface{}{"secret": adminSecret, "platform": 1, "uid": u, "name": u})
		if _, err := setupWrite(c, "auth/user_register", body, deadline, 1102); err != nil {
			return err
		}
	}
	a, b, cc, d := w.users[0], w.users[1], w.users[2], w.users[3]
	w.convs = []*msgConv{
		// Single chats go both ways: a sender who is Recv sends to the other one.
		{ID: singleConv(a, b), Session: 1, Recv: b, Senders: []string{a, b}},
		{ID: singleConv(cc, d), Session: 1, Recv: d, Senders: []string{cc, d}},
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 2; i++ {
		members := []map[string]interface{}{{"uid": a, "setRole": 1}}
		for _, u := range w.users[1:] {
			members = append(members, map[string]interface{}{"uid": u, "setRole": 0})
		}
		body := marshalBody(map[string]interface{}{"operationID": opID("msgg", rng), "groupName": fmt.Sprintf("msg-%d", i), "memberList": members})
		r, err := setupWrite(c, "group/create_group", body, deadline)
		if err != nil {
			return err
		}
		var g struct {
			GroupID string `json:"groupID"`
		}
		if err := r.DecodeData(&g); err != nil || g.GroupID == "" {
			return fmt.Errorf("create_group: no groupID in %s", r.Raw)
		}
		w.convs = append(w.convs, &msgConv{ID: "sg_" + g.GroupID, Session: 2, Recv: g.GroupID, Senders: w.users})
	}
	return nil
}

func (w *msgWorkload) run(ctx context.Context, id int, cl *client, h *History) {
	proc := h.NewProcess()
	for n := 0; n < maxClientOps && ctx.Err() == nil; n++ {
		conv := w.convs[cl.rng.Intn(len(w.convs))]
		var op Op
		switch k := cl.rng.Intn(10); {
		case k < 6:
			op = w.send(cl, h, conv, fmt.Sprintf("w%d-%d", id, n))
		case k < 8:
			op = w.newest(cl, h, w.users[cl.rng.Intn(len(w.users))])
		case k == 9 && cl.rng.Intn(3) == 0:
			op = w.revoke(cl, h)
		default:
			w.mu.Lock()
			hi := w.acked[conv.ID]
			w.mu.Unlock()
			begin := uint64(1 + cl.rng.Int63n(int64(hi)+2))
			op = w.pull(cl, h, conv.ID, begin, begin+9)
		}
		op.Process = proc
		h.Add(op)
		if op.Outcome == Unknown {
			proc = h.NewProcess()
		}
		pause(ctx, cl.rng, 20*time.Millisecond)
	}
}

func (w *msgWorkload) send(cl *client, h *History, conv *msgConv, tag string) Op {
	sender := conv.Senders[cl.rng.Intn(len(conv.Senders))]
	recv := conv.Recv
	if conv.Session == 1 && sender == recv {
		recv = conv.Senders[0]
	}
	op := Op{Workload: "msglog", F: "send", Key: conv.ID, Value: tag, Invoke: h.Now()}
	body := marshalBody(map[string]interface{}{"operationID": opID("msg", cl.rng), "sendID": sender, "recvID": recv,
		"senderNickName": sender, "senderFaceURL": "", "content": map[string]string{"text": tag},
		"contentType": 101, "sessionType": conv.Session})
	res := cl.write("manager/send_msg", body, 8*time.Second)
	op.Complete, op.Outcome, op.Node, op.Attempts, op.Err = h.Now(), res.Outcome, res.Node, res.Attempts, res.Err
	if res.Outcome == OK {
		var a struct {
			MsgID          string `json:"msgID"`
			SendTime       int64  `json:"sendTime"`
			Seq            uint64 `json:"seq"`
			ConversationID string `json:"conversationID"`
		}
		if err := res.Resp.Decode(&a); err != nil {
			op.Err = fmt.Sprintf("undecodable ack: %v", err)
		}
		op.Ack = &Msg{Seq: a.Seq, MsgID: a.MsgID, Text: tag, SendID: sender, SendTime: a.SendTime}
		op.Conv = a.ConversationID
		w.mu.Lock()
		if a.Seq > w.acked[conv.ID] {
			w.acked[conv.ID] = a.Seq
		}
		w.ackedMsgs = append(w.ackedMsgs, revokeTarget{conv: conv.ID, seq: a.Seq, msgID: a.MsgID})
		w.mu.Unlock()
	}
	return op
}

func (w *msgWorkload) newest(cl *client, h *History, uid string) Op {
	op := Op{Workload: "msglog", F: "newest", Key: uid, Invoke: h.Now()}
	r, out, node, errText := cl.read("msg/newest_seq", map[string]interface{}{"operationID": opID("msgn", cl.rng), "uid": uid})
	op.Complete, op.Outcome, op.Node, op.Err = h.Now(), out, node, errText
	if out == OK {
		var d struct {
			Conversations []struct {
				ConversationID string `json:"conversationID"`
				MaxSeq         uint64 `json:"maxSeq"`
			} `json:"conversations"`
		}
		if err := r.DecodeData(&d); err != nil {
			op.Outcome, op.Err = Fail, fmt.Sprintf("undecodable newest_seq: %v", err)
			return op
		}
		op.MaxSeq = map[string]uint64{}
		for _, c := range d.Conversations {
			op.MaxSeq[c.ConversationID] = c.MaxSeq
		}
	}
	return op
}

// wireMsg is a message as pull_msg_by_seq answers it.
type wireMsg struct {
	Seq      uint64          `json:"seq"`
	MsgID    string          `json:"msgID"`
	SendID   string          `json:"sendID"`
	SendTime int64           `json:"sendTime"`
	Content  json.RawMessage `json:"content"`
	Revoked  bool            `json:"revoked"`
}

// text extracts content.text, whether content is an object or a JSON string of one.
func (m wireMsg) text() string {
	var obj struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &obj) == nil && obj.Text != "" {
		return obj.Text
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil && json.Unmarshal([]byte(s), &obj) == nil {
		return obj.Text
	}
	return string(m.Content)
}

func (w *msgWorkload) pull(cl *client, h *History, conv string, begin, end uint64) Op {
	op := Op{Workload: "msglog", F: "pull", Key: conv, Begin: begin, End: end, Invoke: h.Now()}
	r, out, node, errText := cl.read("msg/pull_msg_by_seq", map[string]interface{}{"operationID": opID("msgp", cl.rng),
		"conversationID": conv, "beginSeq": begin, "endSeq": end})
	op.Complete, op.Outcome, op.Node, op.Err = h.Now(), out, node, errText
	if out == OK {
		var ms []wireMsg
		if err := r.DecodeData(&ms); err != nil && len(r.Data) > 0 && string(r.Data) != "null" {
			op.Outcome, op.Err = Fail, fmt.Sprintf("undecodable pull: %v", err)
			return op
		}
		var top struct {
			MinSeq uint64 `json:"minSeq"`
		}
		if err := r.Decode(&top); err == nil {
			op.MinSeq = top.MinSeq
		}
		op.Msgs = []Msg{}
		for _, m := range ms {
			msg := Msg{Seq: m.Seq, MsgID: m.MsgID, Text: m.text(), SendID: m.SendID, SendTime: m.SendTime, Revoked: m.Revoked}
			if m.Revoked {
				msg.Text = "" // the marker; the checker puts the send's text back (resolveRevokes)
			}
			op.Msgs = append(op.Msgs, msg)
		}
	}
	return op
}

// final reads every conversation from every member: its max seq (newest_seq of every
// sender) and all its messages, recorded as one "final" op per node and conversation.
func (w *msgWorkload) final(c *Cluster, h *History, rng *rand.Rand) {
	for _, n := range c.Members() {
		cl := finalClient(c, n, rng)
		proc := h.NewProcess()
		maxSeq := map[string]uint64{}
		failed := ""
		for _, u := range w.users {
			op := retryRead(func() Op { return w.newest(cl, h, u) })
			if op.Outcome != OK {
				failed = "newest_seq: " + op.Err
				break
			}
			for k, v := range op.MaxSeq {
				if v > maxSeq[k] {
					maxSeq[k] = v
				}
			}
		}
		for _, conv := range w.convs {
			if failed != "" {
				// One record per conversation says the node did not answer; no more
				// waiting on it.
				h.Add(Op{Workload: "msglog", F: "final", Key: conv.ID, Node: n.ID, Process: proc, Invoke: h.Now(), Complete: h.Now(), Outcome: Fail, Err: failed})
				continue
			}
			op := Op{Workload: "msglog", F: "final", Key: conv.ID, Node: n.ID, Process: proc, Invoke: h.Now(), Outcome: OK, Msgs: []Msg{}}
			op.End = maxSeq[conv.ID]
			// Chunks of 100, one more past the end to see that nothing follows it; bounded.
			for begin, i := uint64(1), 0; begin <= op.End+1 && i < 10000; i++ {
				p := retryRead(func() Op { return w.pull(cl, h, conv.ID, begin, begin+99) })
				if p.Outcome != OK {
					op.Outcome, op.Err = p.Outcome, "pull: "+p.Err
					failed = op.Err
					break
				}
				op.Msgs = append(op.Msgs, p.Msgs...)
				op.MinSeq = max(op.MinSeq, p.MinSeq)
				if len(p.Msgs) == 0 {
					if p.MinSeq > begin {
						// Retention removed these seqs: go on from the first one kept.
						begin = p.MinSeq
						continue
					}
					break
				}
				begin = p.Msgs[len(p.Msgs)-1].Seq + 1
			}
			op.Complete = h.Now()
			h.Add(op)
		}
	}
}

func (w *msgWorkload) check(ops []Op, _ time.Duration, _ string, _ []porcupine.Annotation) Verdict {
	return CheckMsgLogRetention(ops, w.retention)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
