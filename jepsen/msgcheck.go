package jepsen

import (
	"fmt"
	"sort"
	"time"
)

// CheckMsgLog checks the message-log operations of a history:
//
//   - on every node, each conversation's messages have seqs 1..N in order, and N is the
//     max seq the node reports;
//   - every node holds the same sequence (same msgID and text at every seq);
//   - every acknowledged send is present exactly once, at the seq and with the msgID of
//     its acknowledgement; a send that certainly failed is absent; nothing appears that
//     was never sent; msgIDs are unique;
//   - a send acknowledged before another send was invoked has the lower seq (no
//     reordering), and sendTime never decreases along the sequence;
//   - reads taken during the run agree with the final sequence and are not stale: they
//     see every send acknowledged before they were invoked;
//   - revokes keep the seq and msgID of their message (see resolveRevokes).
func CheckMsgLog(ops []Op) Verdict { return checkMsgLog(ops, 0) }

func checkMsgLog(ops []Op, retention time.Duration) Verdict {
	v := Verdict{Checker: "msglog", Valid: true}
	if retention > 0 {
		ops = applyRetention(&v, ops, retention)
	}
	// After retention: a removed message is a gone placeholder, which no revoke check asks
	// to be revoked.
	ops = resolveRevokes(&v, ops)
	sends := map[string]*Op{} // by tag
	finals := map[string]map[string][]Msg{}
	finalMax := map[string]map[string]uint64{}
	var reads []Op
	convs := map[string]bool{}
	for i := range ops {
		op := &ops[i]
		switch op.F {
		case "send":
			if prev, dup := sends[op.Value]; dup {
				v.problem("history: two sends with tag %s (ops %d, %d)", op.Value, prev.ID, op.ID)
			}
			sends[op.Value] = op
			convs[op.Key] = true
		case "final":
			if op.Outcome != OK {
				v.problem("final read of %s on %s failed: %s", op.Key, op.Node, op.Err)
				continue
			}
			if finals[op.Key] == nil {
				finals[op.Key], finalMax[op.Key] = map[string][]Msg{}, map[string]uint64{}
			}
			finals[op.Key][op.Node] = op.Msgs
			finalMax[op.Key][op.Node] = op.End
			convs[op.Key] = true
		case "pull", "newest":
			if op.Outcome == OK {
				reads = append(reads, *op)
			}
		}
	}
	if len(finals) == 0 && len(sends) > 0 {
		// Without a final sequence nothing can be checked; listing every
		// acknowledgement as lost would only bury the cause.
		v.problem("no final read of any conversation succeeded: nothing can be checked")
		v.Summary = fmt.Sprintf("INVALID: no final reads (%d problems)", len(v.Problems))
		return v
	}
	logs := map[string][]Msg{} // the agreed sequence per conversation
	var nodes int
	for _, conv := range sortedKeys(convs) {
		byNode := finals[conv]
		if len(byNode) == 0 {
			v.problem("%s: no node answered its final read", conv)
			continue
		}
		if len(byNode) > nodes {
			nodes = len(byNode)
		}
		var ref []Msg
		var refNode string
		for _, node := range sortedKeys(byNode) {
			msgs := byNode[node]
			for i, m := range msgs {
				if m.Seq != uint64(i+1) {
					v.problem("%s on %s: position %d holds seq %d (want %d): a gap or reordering", conv, node, i+1, m.Seq, i+1)
					break
				}
			}
			if mx := finalMax[conv][node]; mx != uint64(len(msgs)) {
				v.problem("%s on %s: newest_seq says max seq %d but the pull holds %d messages", conv, node, mx, len(msgs))
			}
			if ref == nil {
				ref, refNode = msgs, node
				continue
			}
			if d := diffMsgs(ref, msgs); d != "" {
				v.problem("%s: %s and %s disagree: %s", conv, refNode, node, d)
			}
		}
		logs[conv] = ref
		checkSequence(&v, conv, ref, sends)
	}
	checkAcks(&v, sends, logs)
	checkReads(&v, reads, sends, logs)
	var (
		total, landed int
		counts        outcomeCounts
	)
	for _, l := range logs {
		total += len(l)
		for _, m := range l {
			if s, found := sends[m.Text]; found && s.Outcome == Unknown {
				landed++
			}
		}
	}
	for _, s := range sends {
		counts.add(s.Outcome)
	}
	verdict := "valid"
	if !v.Valid {
		verdict = fmt.Sprintf("INVALID (%d problems)", len(v.Problems))
	}
	v.Summary = fmt.Sprintf("%s: %d conversations, %d messages on each of %d nodes%s; sends ok %d, unknown %d (%d of them landed), failed %d; %s; %d reads checked",
		verdict, len(logs), total, nodes, retentionSummary(retention, logs), counts.ok, counts.unknown, landed, counts.fail, revokeSummary(ops), len(reads))
	return v
}

// diffMsgs describes the first difference between two sequences, or "".
func diffMsgs(a, b []Msg) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].MsgID != b[i].MsgID || a[i].Text != b[i].Text || a[i].Seq != b[i].Seq || a[i].Revoked != b[i].Revoked {
			return fmt.Sprintf("position %d: seq %d %s %q revoked=%v vs seq %d %s %q revoked=%v", i+1,
				a[i].Seq, a[i].MsgID, a[i].Text, a[i].Revoked, b[i].Seq, b[i].MsgID, b[i].Text, b[i].Revoked)
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d vs %d messages", len(a), len(b))
	}
	return ""
}

// checkSequence checks one conversation's agreed sequence against the sends: nothing
// unsent, nothing failed, nothing twice, no send reordered against real time, sendTime
// never decreasing.
func checkSequence(v *Verdict, conv string, log []Msg, sends map[string]*Op) {
	seen := map[string]uint64{}
	ids := map[string]uint64{}
	// For the real-time check: walking down the seqs, the earliest completion among
	// acknowledged sends with a higher seq.
	type placed struct {
		seq uint64
		op  *Op
	}
	var present []placed
	for i, m := range log {
		if m.Gone {
			continue
		}
		if s, dup := seen[m.Text]; dup {
			v.problem("%s: message %q appears twice (seqs %d and %d): duplicated", conv, m.Text, s, m.Seq)
		}
		seen[m.Text] = m.Seq
		if s, dup := ids[m.MsgID]; dup && m.MsgID != "" {
			v.problem("%s: msgID %s at seqs %d and %d", conv, m.MsgID, s, m.Seq)
		}
		ids[m.MsgID] = m.Seq
		if i > 0 && m.SendTime < log[i-1].SendTime {
			v.problem("%s: sendTime decreases from seq %d to %d", conv, log[i-1].Seq, m.Seq)
		}
		op, ok := sends[m.Text]
		switch {
		case !ok:
			v.problem("%s: seq %d %q was never sent", conv, m.Seq, m.Text)
		case op.Key != conv:
			v.problem("%s: seq %d %q was sent to %s", conv, m.Seq, m.Text, op.Key)
		case op.Outcome == Fail:
			v.problem("%s: seq %d %q belongs to a send that certainly failed (%s)", conv, m.Seq, m.Text, op.Err)
		default:
			present = append(present, placed{m.Seq, op})
		}
	}
	minLater := int64(1<<63 - 1)
	var minLaterOp *Op
	for i := len(present) - 1; i >= 0; i-- {
		p := present[i]
		if minLaterOp != nil && minLater < p.op.Invoke {
			v.problem("%s: %q (seq %d) was acknowledged before %q (seq %d) was sent, yet follows it: reordered",
				conv, minLaterOp.Value, minLaterOp.Ack.Seq, p.op.Value, p.seq)
		}
		if p.op.Outcome == OK && p.op.Complete < minLater {
			minLater, minLaterOp = p.op.Complete, p.op
		}
	}
}

// checkAcks checks that every acknowledged send is in its conversation at its seq.
func checkAcks(v *Verdict, sends map[string]*Op, logs map[string][]Msg) {
	for _, tag := range sortedKeys(sends) {
		op := sends[tag]
		if op.Outcome != OK {
			continue
		}
		if op.Ack == nil {
			v.problem("send %q: acknowledged without msgID/seq", tag)
			continue
		}
		if op.Conv != "" && op.Conv != op.Key {
			v.problem("send %q: acknowledged in conversation %s, sent to %s", tag, op.Conv, op.Key)
		}
		log, known := logs[op.Key]
		if !known {
			continue // no node answered the final read of this conversation (reported)
		}
		if goneAt(log, op.Ack.Seq) {
			continue // removed by retention, not before its time (applyRetention)
		}
		found := 0
		for _, m := range log {
			if m.Text == tag {
				found++
			}
		}
		if found == 0 {
			v.problem("%s: acknowledged message %q (seq %d, %s) is missing: lost", op.Key, tag, op.Ack.Seq, op.Ack.MsgID)
			continue
		}
		if op.Ack.Seq < 1 || op.Ack.Seq > uint64(len(log)) || log[op.Ack.Seq-1].Text != tag {
			v.problem("%s: %q was acknowledged with seq %d but is stored elsewhere", op.Key, tag, op.Ack.Seq)
		} else if log[op.Ack.Seq-1].MsgID != op.Ack.MsgID {
			v.problem("%s: %q was acknowledged with msgID %s but stored with %s", op.Key, tag, op.Ack.MsgID, log[op.Ack.Seq-1].MsgID)
		}
	}
}

// checkReads checks the reads taken during the run against the agreed sequences and the
// acknowledgements that preceded them.
func checkReads(v *Verdict, reads []Op, sends map[string]*Op, logs map[string][]Msg) {
	// Acknowledged sends per conversation by completion time, with the running maximum of
	// their seqs, for the staleness check.
	type ackPoint struct {
		complete int64
		hi       uint64
		who      *Op
	}
	acks := map[string][]ackPoint{}
	for _, op := range sends {
		if op.Outcome == OK && op.Ack != nil {
			acks[op.Key] = append(acks[op.Key], ackPoint{op.Complete, op.Ack.Seq, op})
		}
	}
	for _, l := range acks {
		sort.Slice(l, func(i, j int) bool { return l[i].complete < l[j].complete })
		for i := 1; i < len(l); i++ {
			if l[i-1].hi > l[i].hi {
				l[i].hi, l[i].who = l[i-1].hi, l[i-1].who
			}
		}
	}
	// highestBefore is the highest acknowledged seq in conv completed before t.
	highestBefore := func(conv string, t int64) (uint64, *Op) {
		l := acks[conv]
		i := sort.Search(len(l), func(i int) bool { return l[i].complete >= t })
		if i == 0 {
			return 0, nil
		}
		return l[i-1].hi, l[i-1].who
	}
	for _, r := range reads {
		switch r.F {
		case "pull":
			log, known := logs[r.Key]
			if !known {
				continue
			}
			first := readStart(r)
			for i, m := range r.Msgs {
				if m.Seq != first+uint64(i) {
					v.problem("read %d of %s [%d,%d] on %s: position %d holds seq %d", r.ID, r.Key, r.Begin, r.End, r.Node, i, m.Seq)
					break
				}
				if goneAt(log, m.Seq) {
					continue // read before retention removed it everywhere
				}
				if m.Seq > uint64(len(log)) || log[m.Seq-1].MsgID != m.MsgID || log[m.Seq-1].Text != m.Text {
					v.problem("read %d of %s on %s saw seq %d = %q (%s), which the final sequence does not hold there", r.ID, r.Key, r.Node, m.Seq, m.Text, m.MsgID)
				}
			}
			hi, who := highestBefore(r.Key, r.Invoke)
			seen := first + uint64(len(r.Msgs)) - 1
			if hi >= r.Begin && seen < hi && seen < r.End {
				v.problem("stale read %d of %s [%d,%d] on %s: ends at seq %d although %q had been acknowledged at seq %d", r.ID, r.Key, r.Begin, r.End, r.Node, seen, who.Value, hi)
			}
		case "newest":
			for _, conv := range sortedKeys(r.MaxSeq) {
				log, known := logs[conv]
				if !known {
					continue
				}
				mx := r.MaxSeq[conv]
				if mx > uint64(len(log)) {
					v.problem("read %d on %s: newest_seq %s = %d, beyond the final %d", r.ID, r.Node, conv, mx, len(log))
				}
				if hi, who := highestBefore(conv, r.Invoke); mx < hi {
					v.problem("stale read %d on %s: newest_seq %s = %d although %q had been acknowledged at seq %d", r.ID, r.Node, conv, mx, who.Value, hi)
				}
			}
		}
	}
}
