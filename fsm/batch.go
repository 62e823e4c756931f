package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Command packing.
//
// A leader packs the commands waiting at the same moment into one raft entry, a CmdBatch
// whose body is the list of the commands as Encode made them ([type][keylen][key][body]
// each). The raft log, its fsyncs and the followers' work are then paid per entry, not per
// command. Apply runs the commands in order in the same transaction, each as if it were an
// entry of its own: its own idempotency record (a key seen earlier, in this batch or
// another, answers the first result), its own *Result (a domain error in one changes
// nothing and leaves the others alone), and its own identity (below). Every command of a
// batch sees the entry's log time. A batch carries no idempotency key of its own, and
// batches do not nest: Validate refuses both, and Apply answers a nested batch
// ErrInvalidArgument without applying it.
//
// Identity. A command used to be identified by its raft index: messages are stored in
// msglog under it (and conversations list those keys), and a registration's RegIndex, which
// tokens carry, is it. The commands of one entry share an index, so each command gets an
// id instead: max(lastID+1, index), where lastID is the largest id a packed command took
// (meta record keyLastID, absent until the first batch). Ids only grow, so they are unique
// and in log order; they derive from the log and replicated state only, so every replica
// assigns the same; and a command alone in its entry gets exactly its index, as before, so
// files written before packing keep their meaning and nodes agree with older ones on every
// entry that is not a batch. Every earlier key is an index at or below the applied index,
// and an id is above both the current index and every earlier id, so no key is reused.
// (Keys of the form index<<k|i would not do: a later raw index can equal one of them.)

// CmdBatch is a raft entry that packs several commands (see EncodeBatch).
const CmdBatch CommandType = 25

// MaxBatchCommands bounds the commands of one batch entry.
const MaxBatchCommands = 1024

// keyLastID is the meta record of the largest id a packed command took (big-endian).
var keyLastID = []byte("lastid")

// BatchResults is what Apply returns for a CmdBatch entry: one result per command, in the
// batch's order (nil for a skipped unknown optional command).
type BatchResults []*Result

// EncodeBatch packs commands (each from Encode, none a batch) into one CmdBatch entry.
func EncodeBatch(cmds [][]byte) ([]byte, error) {
	if len(cmds) == 0 || len(cmds) > MaxBatchCommands {
		return nil, fmt.Errorf("a batch holds 1 to %d commands, not %d", MaxBatchCommands, len(cmds))
	}
	return Encode(CmdBatch, nil, cmds)
}

// errNestedBatch is why a batch inside a batch is refused.
var errNestedBatch = errors.New("a batch inside a batch")

// validateBatch checks a CmdBatch body the way Validate checks a command.
func validateBatch(key, body []byte) error {
	if key != nil {
		return errors.New("a batch carries no idempotency key")
	}
	var cmds [][]byte
	if err := DecodeBody(body, &cmds); err != nil {
		return fmt.Errorf("%s body: %w", CmdBatch, err)
	}
	if len(cmds) == 0 || len(cmds) > MaxBatchCommands {
		return fmt.Errorf("a batch holds 1 to %d commands, not %d", MaxBatchCommands, len(cmds))
	}
	for i, c := range cmds {
		if len(c) > 0 && CommandType(c[0]) == CmdBatch {
			return fmt.Errorf("command %d: %w", i, errNestedBatch)
		}
		if err := Validate(c); err != nil {
			return fmt.Errorf("command %d: %w", i, err)
		}
	}
	return nil
}

// applyBatch applies the commands of a CmdBatch entry in order.
func (w *txn) applyBatch(body []byte) BatchResults {
	var cmds [][]byte
	if err := DecodeBody(body, &cmds); err != nil {
		panic(fmt.Sprintf("fsm: decode %s body at index %d: %v", CmdBatch, w.index, err))
	}
	out := make(BatchResults, len(cmds))
	for i, c := range cmds {
		if len(c) > 0 && CommandType(c[0]) == CmdBatch {
			out[i] = &Result{Err: ErrorName(ErrInvalidArgument)}
			continue
		}
		out[i] = w.applyOne(c)
	}
	w.packed += max(len(cmds)-1, 0)
	return out
}

// nextID returns the id of the command about to be applied at w.index (see "Identity"
// above). An id above the index is recorded: a later entry's index may not exceed it. One
// equal to the index need not be, since every later index exceeds it.
func (w *txn) nextID() uint64 {
	if !w.lastIDOK {
		if v := w.meta.Get(keyLastID); len(v) == 8 {
			w.lastID = binary.BigEndian.Uint64(v)
		}
		w.lastIDOK = true
	}
	id := max(w.lastID+1, w.index)
	w.lastID = id
	if id > w.index {
		w.lastIDDirty = true // recorded once per applied batch of entries (saveLastID)
	}
	return id
}

// saveLastID records lastID if a command took an id above its index since the last save.
func (w *txn) saveLastID() {
	if !w.lastIDDirty {
		return
	}
	if err := w.meta.Put(keyLastID, binary.BigEndian.AppendUint64(nil, w.lastID)); err != nil {
		panic(fmt.Sprintf("fsm: entry %d: record command id %d: %v", w.index, w.lastID, err))
	}
	w.lastIDDirty = false
}
