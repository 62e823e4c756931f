package jepsen

import (
	"fmt"
	"sort"
	"time"
)

// Revokes in the message-log workload: now and then a client revokes an acknowledged
// message (msg/revoke_msg with the administrator's token, which may revoke any message).
// A revoke replaces the content on every node and keeps the seq and the msgID, so the
// checker expects the message where its send put it, marked revoked.

// revokeAt is a message's place: conversation and seq.
type revokeAt struct {
	conv string
	seq  uint64
}

// revokeTarget is an acknowledged message.
type revokeTarget struct {
	conv  string
	seq   uint64
	msgID string
}

// revoke revokes a random acknowledged message. Its op has Key the conversation and Ack
// the target's seq and msgID. A message revoked already answers 1211: a failed op.
func (w *msgWorkload) revoke(cl *client, h *History) Op {
	w.mu.Lock()
	n := len(w.ackedMsgs)
	var tg revokeTarget
	if n > 0 {
		tg = w.ackedMsgs[cl.rng.Intn(n)]
	}
	w.mu.Unlock()
	op := Op{Workload: "msglog", F: "revoke", Invoke: h.Now()}
	if n == 0 {
		op.Complete, op.Outcome, op.Err = h.Now(), Fail, "nothing acknowledged to revoke yet"
		return op
	}
	op.Key, op.Ack = tg.conv, &Msg{Seq: tg.seq, MsgID: tg.msgID}
	body := marshalBody(map[string]interface{}{"operationID": opID("msgr", cl.rng), "conversationID": tg.conv, "seq": tg.seq})
	res := cl.write("msg/revoke_msg", body, 8*time.Second)
	op.Complete, op.Outcome, op.Node, op.Attempts, op.Err = h.Now(), res.Outcome, res.Node, res.Attempts, res.Err
	return op
}

// resolveRevokes checks the revokes of a history and returns its ops with the text of every
// revoked message put back from the acknowledgement of the send with its msgID, so that
// the other checks find a revoked message where its send put it. It reports:
//
//   - a revoked message that no revoke (ok or unknown) of that seq and msgID can explain,
//     or whose msgID no acknowledged send had;
//   - an acknowledged revoke, or one a read saw, whose message is not revoked in a final
//     read, or is revoked with another msgID there (a revoke keeps the seq and the msgID),
//     unless retention has removed it since (a gone placeholder);
//   - a read invoked after a revoke was acknowledged that still sees the message's content.
//
// Reads of the history are copied before their text is changed.
func resolveRevokes(v *Verdict, ops []Op) []Op {
	revokes := map[revokeAt][]*Op{}
	textOf := map[string]string{} // msgID -> tag of the acknowledged send
	for i := range ops {
		op := &ops[i]
		switch {
		case op.F == "revoke" && op.Outcome != Fail && op.Ack != nil:
			revokes[revokeAt{op.Key, op.Ack.Seq}] = append(revokes[revokeAt{op.Key, op.Ack.Seq}], op)
		case op.F == "send" && op.Outcome == OK && op.Ack != nil:
			textOf[op.Ack.MsgID] = op.Value
		}
	}
	seenRevoked := map[revokeAt]int{} // by a read during the run: its op ID
	out := make([]Op, len(ops))
	copy(out, ops)
	for i := range out {
		op := &out[i]
		if op.Outcome != OK || (op.F != "pull" && op.F != "final") {
			continue
		}
		msgs := make([]Msg, len(op.Msgs))
		copy(msgs, op.Msgs)
		op.Msgs = msgs
		for j := range msgs {
			m := &msgs[j]
			rs := revokes[revokeAt{op.Key, m.Seq}]
			if !m.Revoked {
				for _, r := range rs {
					if r.Outcome == OK && r.Complete < op.Invoke && r.Ack.MsgID == m.MsgID {
						v.problem("stale read %d of %s on %s: seq %d still has its content although its revoke (op %d) was acknowledged before", op.ID, op.Key, op.Node, m.Seq, r.ID)
						break
					}
				}
				continue
			}
			if op.F == "pull" {
				seenRevoked[revokeAt{op.Key, m.Seq}] = op.ID
			}
			explained := false
			for _, r := range rs {
				explained = explained || r.Ack.MsgID == m.MsgID
			}
			if !explained {
				v.problem("%s on %s (read %d): seq %d %s is revoked, but no revoke of that seq and msgID was invoked", op.Key, op.Node, op.ID, m.Seq, m.MsgID)
			}
			text, ok := textOf[m.MsgID]
			if !ok {
				v.problem("%s on %s (read %d): revoked seq %d has msgID %s, which no acknowledged send had", op.Key, op.Node, op.ID, m.Seq, m.MsgID)
				continue
			}
			m.Text = text
		}
	}
	// Every acknowledged revoke, and every revoke a read saw, holds in every final read of
	// its conversation.
	for i := range out {
		f := &out[i]
		if f.F != "final" || f.Outcome != OK {
			continue
		}
		for k, id := range seenRevoked {
			if k.conv == f.Key && k.seq <= uint64(len(f.Msgs)) && f.Msgs[k.seq-1].Seq == k.seq && !f.Msgs[k.seq-1].Revoked && !f.Msgs[k.seq-1].Gone {
				v.problem("%s on %s: seq %d is not revoked, but read %d saw it revoked: the revoke was lost", f.Key, f.Node, k.seq, id)
			}
		}
		for _, key := range sortedRevokeKeys(revokes, f.Key) {
			for _, r := range revokes[revokeAt{f.Key, key}] {
				if r.Outcome != OK {
					continue
				}
				if key > uint64(len(f.Msgs)) || f.Msgs[key-1].Seq != key {
					continue // missing or misplaced: reported as lost or as a gap
				}
				if m := f.Msgs[key-1]; !m.Gone && (!m.Revoked || m.MsgID != r.Ack.MsgID) {
					v.problem("%s on %s: seq %d (%s, revoked=%v) after revoke op %d of %s was acknowledged", f.Key, f.Node, key, m.MsgID, m.Revoked, r.ID, r.Ack.MsgID)
				}
			}
		}
	}
	return out
}

// sortedRevokeKeys returns, in order, the seqs of conv that revokes target.
func sortedRevokeKeys(revokes map[revokeAt][]*Op, conv string) []uint64 {
	var out []uint64
	for k := range revokes {
		if k.conv == conv {
			out = append(out, k.seq)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// revokeSummary counts the revokes of a history by outcome, for the verdict's summary.
func revokeSummary(ops []Op) string {
	var c outcomeCounts
	for _, op := range ops {
		if op.F == "revoke" {
			c.add(op.Outcome)
		}
	}
	return fmt.Sprintf("revokes ok %d, unknown %d, failed %d", c.ok, c.unknown, c.fail)
}
