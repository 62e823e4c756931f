package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// txn is one bbolt transaction with its buckets looked up once. Appliers get the entry's
// index and time through it; readers use the same helpers on a read transaction.
type txn struct {
	tx *bolt.Tx

	meta, users, friends, blacklist, blockedBy, groups, members, userGroups,
	convs, userConvs, msgLog, msgIdx, idemLog, convState, msgDeleted *bolt.Bucket
	idx *idemIndex

	// Set per entry by applyCommand: its raft index and log time (Unix nanoseconds).
	index uint64
	now   int64
	// id is the identity of the command being applied (see nextID), set per command.
	id  uint64
	eff *effects
	// lastID caches the meta record keyLastID once read (lastIDOK), and lastIDDirty says
	// it has grown since it was last saved (saveLastID); packed counts the commands
	// beyond the first of the batch entries applied (see apply).
	lastID      uint64
	lastIDOK    bool
	lastIDDirty bool
	packed      int
}

func newTxn(tx *bolt.Tx, idx *idemIndex) *txn {
	t := &txn{
		tx:         tx,
		meta:       tx.Bucket(bktMeta),
		users:      tx.Bucket(bktUsers),
		friends:    tx.Bucket(bktFriends),
		blacklist:  tx.Bucket(bktBlacklist),
		blockedBy:  tx.Bucket(bktBlockedBy),
		groups:     tx.Bucket(bktGroups),
		members:    tx.Bucket(bktMembers),
		userGroups: tx.Bucket(bktUserGroups),
		convs:      tx.Bucket(bktConvs),
		userConvs:  tx.Bucket(bktUserConvs),
		msgLog:     tx.Bucket(bktMsgLog),
		msgIdx:     tx.Bucket(bktMsgIdx),
		idemLog:    tx.Bucket(bktIdemLog),
		convState:  tx.Bucket(bktConvState),
		msgDeleted: tx.Bucket(bktMsgDeleted),
		idx:        idx,
	}
	if tx.Writable() {
		// Messages and idempotency records are appended at the end of their buckets: a page
		// split there never receives keys again on its left side, so filling it (instead
		// of bbolt's default half) keeps pages full.
		t.msgLog.FillPercent = 1.0
		t.idemLog.FillPercent = 1.0
	}
	return t
}

// notify adds a notice for after the commit. Call it only once the command will succeed:
// a command that fails changes nothing, and tells nobody.
func (w *txn) notify(n Notice) { w.eff.notices = append(w.eff.notices, n) }

func (w *txn) appliedIndex() uint64 { return appliedIn(w.meta) }

// appliedIn returns the applied index a meta bucket records (0 without one, or no bucket).
func appliedIn(meta *bolt.Bucket) uint64 {
	if meta == nil {
		return 0
	}
	if v := meta.Get(keyApplied); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// validID reports whether s can be a uid or groupID: non-empty, bounded, and without the
// NUL byte that separates the parts of composite keys.
func validID(s string) bool {
	return s != "" && len(s) <= maxIDLen && strings.IndexByte(s, 0) < 0
}

// pairKey is a\x00b.
func pairKey(a, b string) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

// prefixKey is a\x00, the prefix of every pairKey(a, _).
func prefixKey(a string) []byte {
	k := make([]byte, 0, len(a)+1)
	k = append(k, a...)
	return append(k, 0)
}

// chunkKey is conversationID\x00 + big-endian chunk number, the msgidx key of the chunk
// holding seqs chunk*seqChunk+1 .. (chunk+1)*seqChunk.
func chunkKey(conversationID string, chunk uint64) []byte {
	k := make([]byte, 0, len(conversationID)+9)
	k = append(k, conversationID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, chunk)
}

func logKey(index uint64) []byte { return binary.BigEndian.AppendUint64(nil, index) }

// suffixes returns, in key order, the parts after the prefix of every a\x00_ key. Callers
// that delete collect first: deleting under a live cursor can skip keys in bbolt.
func suffixes(b *bolt.Bucket, a string) []string {
	var out []string
	p := prefixKey(a)
	c := b.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[len(p):]))
	}
	return out
}

func has(b *bolt.Bucket, k []byte) bool { return b.Get(k) != nil }

func get(b *bolt.Bucket, k []byte, v interface{}) (bool, error) {
	raw := b.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := DecodeValue(raw, v); err != nil {
		return true, fmt.Errorf("decode value of %q: %w", k, err)
	}
	return true, nil
}

func put(b *bolt.Bucket, k []byte, v interface{}) error {
	raw, err := EncodeValue(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", k, err)
	}
	return b.Put(k, raw)
}

func (w *txn) getUser(uid string) (User, bool, error) {
	var u User
	if !validID(uid) {
		return u, false, nil
	}
	ok, err := get(w.users, []byte(uid), &u)
	return u, ok, err
}

func (w *txn) userExists(uid string) bool {
	return validID(uid) && has(w.users, []byte(uid))
}

func (w *txn) getGroup(groupID string) (Group, bool, error) {
	var g Group
	if !validID(groupID) {
		return g, false, nil
	}
	ok, err := get(w.groups, []byte(groupID), &g)
	return g, ok, err
}

// memberRec is the value of members/groupID\x00uid.
type memberRec struct {
	Role     int32
	JoinTime int64
	// MuteEnd: the member may not send while the entry's log time is before it.
	MuteEnd int64
}

func (w *txn) getMember(groupID, uid string) (memberRec, bool, error) {
	var m memberRec
	if !validID(groupID) || !validID(uid) {
		return m, false, nil
	}
	ok, err := get(w.members, pairKey(groupID, uid), &m)
	return m, ok, err
}

// convRec is the value of convs/conversationID.
type convRec struct {
	MaxSeq       uint64
	LastSendTime int64
	// Pair is the two uids of a single chat, sorted (see ErrConversationTaken); empty for
	// groups and for records written before it existed.
	Pair []string
	// Tail holds the msglog keys of the newest MaxSeq % seqChunk messages, the chunk not yet
	// in msgidx (see sendMessage).
	Tail []uint64
	// MinSeq is the lowest seq retention has not removed (see retention.go); 0 when it
	// never removed any.
	MinSeq uint64
}

func (w *txn) getConv(conversationID string) (convRec, error) {
	var c convRec
	_, err := get(w.convs, []byte(conversationID), &c)
	return c, err
}
