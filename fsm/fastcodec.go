package fsm

import (
	"encoding/binary"
	"errors"
	"math"
)

// A hand-written msgpack codec for the values every message write encodes or decodes
// several times on every node: SendMessage (the command), Message and convRec (the stored
// records), Result (the idempotency record and the answer) and [][]byte (a CmdBatch body,
// a forwarded batch). It writes exactly the bytes the reflection codec (mh) writes for them,
// so stored records, digests and log entries are unchanged, and reads whatever mh wrote; a
// value it does not expect (a future field, an unusual encoding) is left to mh. The tests
// compare both codecs on random values. Profiles at c = 64 had mh's reflection at 15% of
// each node's CPU.

// errSlowPath means: let the reflection codec handle this value.
var errSlowPath = errors.New("fsm: value needs the reflection codec")

// msgpack format bytes (https://github.com/msgpack/msgpack/blob/master/spec.md).
const (
	mpNil      = 0xc0
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpFixStr   = 0xa0
	mpFixArray = 0x90
	mpNegFix   = 0xe0
)

// fastEncode encodes v if it is one of the fast types; ok is false otherwise. The slice is
// allocated once, at fastSize.
func fastEncode(v interface{}) (b []byte, ok bool) {
	n, ok := fastSize(v)
	if !ok {
		return nil, false
	}
	return fastAppend(make([]byte, 0, n), v), true
}

// fastAppend appends v, one of the types fastSize accepts, to b.
func fastAppend(b []byte, v interface{}) []byte {
	switch x := v.(type) {
	case *Message:
		return appendMessage(b, x)
	case *SendMessage:
		return appendSendMessage(b, x)
	case SendMessage: // the API proposes it by value
		return appendSendMessage(b, &x)
	case *convRec:
		return appendConvRec(b, x)
	case *Result:
		return appendResult(b, x)
	case [][]byte:
		return appendSlice(b, x, appendBin)
	}
	panic("fsm: fastAppend of a value fastSize refuses")
}

// fastSize is the length of v's encoding if v is one of the fast types (a Result only
// without Results); ok is false otherwise. It follows the writers below.
func fastSize(v interface{}) (n int, ok bool) {
	switch x := v.(type) {
	case *Message:
		return messageSize(x), true
	case *SendMessage:
		return sendMessageSize(x), true
	case SendMessage:
		return sendMessageSize(&x), true
	case *convRec:
		return 1 + uintSize(x.MaxSeq) + intSize(x.LastSendTime) + sliceSize(x.Pair, strSize) +
			sliceSize(x.Tail, uintSize) + uintSize(x.MinSeq), true
	case *Result:
		if x.Results != nil {
			return 0, false
		}
		return 1 + strSize(x.Err) + strSize(x.UID) + uintSize(x.RegIndex) + strSize(x.GroupID) + strSize(x.MsgID) +
			intSize(x.SendTime) + uintSize(x.Seq) + strSize(x.ConversationID) + sliceSize(x.Failed, strSize) +
			1 + 1 + intSize(int64(x.Pruned)), true
	case [][]byte:
		return sliceSize(x, binSize), true
	}
	return 0, false
}

func messageSize(m *Message) int {
	return 1 + strSize(m.ConversationID) + uintSize(m.Seq) + strSize(m.MsgID) + strSize(m.SendID) +
		strSize(m.RecvID) + strSize(m.SenderNickName) + strSize(m.SenderFaceURL) +
		intSize(int64(m.SessionType)) + intSize(int64(m.ContentType)) + binSize(m.Content) +
		sliceSize(m.ForceList, strSize) + intSize(m.SendTime) + 1 + strSize(m.RevokerUID) + intSize(m.RevokeTime)
}

func sendMessageSize(c *SendMessage) int {
	return 1 + strSize(c.MsgID) + strSize(c.SendID) + strSize(c.RecvID) + strSize(c.SenderNickName) +
		strSize(c.SenderFaceURL) + intSize(int64(c.SessionType)) + intSize(int64(c.ContentType)) +
		binSize(c.Content) + sliceSize(c.ForceList, strSize)
}

// Sizes of the writers' output, for fastSize. Each runs the writer of a header or number
// into an array on the stack, so a size cannot disagree with what is written.

// scratch holds the longest header or number: a marker and 8 bytes.
type scratch [9]byte

func sliceSize[T any](s []T, size func(T) int) int {
	if s == nil {
		return 1
	}
	n := arrayLenSize(len(s))
	for _, v := range s {
		n += size(v)
	}
	return n
}

func arrayLenSize(n int) int { var h scratch; return len(appendArrayLen(h[:0], n)) }
func strSize(s string) int   { var h scratch; return len(appendStrHead(h[:0], len(s))) + len(s) }
func binSize(v []byte) int   { var h scratch; return len(appendBinHead(h[:0], v)) + len(v) }
func uintSize(u uint64) int  { var h scratch; return len(appendUint(h[:0], u)) }
func intSize(i int64) int    { var h scratch; return len(appendInt(h[:0], i)) }

// fastDecode decodes b into v if v is one of the fast types. It returns errSlowPath when v
// is not, or when b holds something only the reflection codec reads; v is then unchanged.
func fastDecode(b []byte, v interface{}) error {
	r := mpReader{b: b}
	switch x := v.(type) {
	case *Message:
		var m Message
		if !r.message(&m) {
			return errSlowPath
		}
		*x = m
	case *SendMessage:
		var c SendMessage
		if !r.sendMessage(&c) {
			return errSlowPath
		}
		*x = c
	case *convRec:
		var c convRec
		if !r.convRec(&c) {
			return errSlowPath
		}
		*x = c
	case *Result:
		var res Result
		if !r.result(&res) {
			return errSlowPath
		}
		*x = res
	case *[][]byte:
		var out [][]byte
		if !readSlice(&r, &out, r.bin) {
			return errSlowPath
		}
		*x = out
	default:
		return errSlowPath
	}
	if r.i != len(b) {
		// Trailing bytes: mh reads only the first value too, but let it decide.
		return errSlowPath
	}
	return nil
}

func appendMessage(b []byte, m *Message) []byte {
	b = appendArrayLen(b, 15)
	b = appendStr(b, m.ConversationID)
	b = appendUint(b, m.Seq)
	b = appendStr(b, m.MsgID)
	b = appendStr(b, m.SendID)
	b = appendStr(b, m.RecvID)
	b = appendStr(b, m.SenderNickName)
	b = appendStr(b, m.SenderFaceURL)
	b = appendInt(b, int64(m.SessionType))
	b = appendInt(b, int64(m.ContentType))
	b = appendBin(b, m.Content)
	b = appendSlice(b, m.ForceList, appendStr)
	b = appendInt(b, m.SendTime)
	b = appendBool(b, m.Revoked)
	b = appendStr(b, m.RevokerUID)
	return appendInt(b, m.RevokeTime)
}

func (r *mpReader) message(m *Message) bool {
	n, ok := r.arrayLen()
	if !ok || n > 15 {
		return false
	}
	return (!more(&n) || r.str(&m.ConversationID)) &&
		(!more(&n) || r.uint(&m.Seq)) &&
		(!more(&n) || r.str(&m.MsgID)) &&
		(!more(&n) || r.str(&m.SendID)) &&
		(!more(&n) || r.str(&m.RecvID)) &&
		(!more(&n) || r.str(&m.SenderNickName)) &&
		(!more(&n) || r.str(&m.SenderFaceURL)) &&
		(!more(&n) || r.int32(&m.SessionType)) &&
		(!more(&n) || r.int32(&m.ContentType)) &&
		(!more(&n) || r.bin(&m.Content)) &&
		(!more(&n) || readSlice(r, &m.ForceList, r.str)) &&
		(!more(&n) || r.int64(&m.SendTime)) &&
		(!more(&n) || r.bool(&m.Revoked)) &&
		(!more(&n) || r.str(&m.RevokerUID)) &&
		(!more(&n) || r.int64(&m.RevokeTime))
}

func appendSendMessage(b []byte, c *SendMessage) []byte {
	b = appendArrayLen(b, 9)
	b = appendStr(b, c.MsgID)
	b = appendStr(b, c.SendID)
	b = appendStr(b, c.RecvID)
	b = appendStr(b, c.SenderNickName)
	b = appendStr(b, c.SenderFaceURL)
	b = appendInt(b, int64(c.SessionType))
	b = appendInt(b, int64(c.ContentType))
	b = appendBin(b, c.Content)
	return appendSlice(b, c.ForceList, appendStr)
}

func (r *mpReader) sendMessage(c *SendMessage) bool {
	n, ok := r.arrayLen()
	if !ok || n > 9 {
		return false
	}
	return (!more(&n) || r.str(&c.MsgID)) &&
		(!more(&n) || r.str(&c.SendID)) &&
		(!more(&n) || r.str(&c.RecvID)) &&
		(!more(&n) || r.str(&c.SenderNickName)) &&
		(!more(&n) || r.str(&c.SenderFaceURL)) &&
		(!more(&n) || r.int32(&c.SessionType)) &&
		(!more(&n) || r.int32(&c.ContentType)) &&
		(!more(&n) || r.bin(&c.Content)) &&
		(!more(&n) || readSlice(r, &c.ForceList, r.str))
}

func appendConvRec(b []byte, c *convRec) []byte {
	b = appendArrayLen(b, 5)
	b = appendUint(b, c.MaxSeq)
	b = appendInt(b, c.LastSendTime)
	b = appendSlice(b, c.Pair, appendStr)
	b = appendSlice(b, c.Tail, appendUint)
	return appendUint(b, c.MinSeq)
}

func (r *mpReader) convRec(c *convRec) bool {
	n, ok := r.arrayLen()
	if !ok || n > 5 {
		return false
	}
	return (!more(&n) || r.uint(&c.MaxSeq)) &&
		(!more(&n) || r.int64(&c.LastSendTime)) &&
		(!more(&n) || readSlice(r, &c.Pair, r.str)) &&
		(!more(&n) || readSlice(r, &c.Tail, r.uint)) &&
		(!more(&n) || r.uint(&c.MinSeq))
}

func appendResult(b []byte, res *Result) []byte {
	b = appendArrayLen(b, 12)
	b = appendStr(b, res.Err)
	b = appendStr(b, res.UID)
	b = appendUint(b, res.RegIndex)
	b = appendStr(b, res.GroupID)
	b = appendStr(b, res.MsgID)
	b = appendInt(b, res.SendTime)
	b = appendUint(b, res.Seq)
	b = appendStr(b, res.ConversationID)
	b = appendSlice(b, res.Failed, appendStr)
	b = append(b, mpNil) // Results: the fast path takes only results without it
	b = appendBool(b, res.Replayed)
	return appendInt(b, int64(res.Pruned))
}

func (r *mpReader) result(res *Result) bool {
	n, ok := r.arrayLen()
	if !ok || n > 12 {
		return false
	}
	return (!more(&n) || r.str(&res.Err)) &&
		(!more(&n) || r.str(&res.UID)) &&
		(!more(&n) || r.uint(&res.RegIndex)) &&
		(!more(&n) || r.str(&res.GroupID)) &&
		(!more(&n) || r.str(&res.MsgID)) &&
		(!more(&n) || r.int64(&res.SendTime)) &&
		(!more(&n) || r.uint(&res.Seq)) &&
		(!more(&n) || r.str(&res.ConversationID)) &&
		(!more(&n) || readSlice(r, &res.Failed, r.str)) &&
		(!more(&n) || r.null()) && // Results: only nil here, anything else goes to mh
		(!more(&n) || r.bool(&res.Replayed)) &&
		(!more(&n) || r.goInt(&res.Pruned))
}

// Writers, in mh's choices: the shortest form of each number, str for strings and bin
// for []byte (WriteExt), nil for a nil slice.

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, mpFixArray|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpArray16), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, mpArray32), uint32(n))
	}
}

func appendStr(b []byte, s string) []byte { return append(appendStrHead(b, len(s)), s...) }

func appendStrHead(b []byte, n int) []byte {
	switch {
	case n < 32:
		return append(b, mpFixStr|byte(n))
	case n <= math.MaxUint8:
		return append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpStr16), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, mpStr32), uint32(n))
	}
}

func appendBin(b []byte, v []byte) []byte { return append(appendBinHead(b, v), v...) }

// appendBinHead writes the header of v, or nil for a nil slice.
func appendBinHead(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, mpNil)
	}
	switch n := len(v); {
	case n <= math.MaxUint8:
		return append(b, mpBin8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpBin16), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, mpBin32), uint32(n))
	}
}

// appendSlice writes s as an array of elements written by elem, or nil for a nil slice.
func appendSlice[T any](b []byte, s []T, elem func([]byte, T) []byte) []byte {
	if s == nil {
		return append(b, mpNil)
	}
	b = appendArrayLen(b, len(s))
	for _, v := range s {
		b = elem(b, v)
	}
	return b
}

func appendUint(b []byte, u uint64) []byte {
	switch {
	case u <= math.MaxInt8:
		return append(b, byte(u))
	case u <= math.MaxUint8:
		return append(b, mpUint8, byte(u))
	case u <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpUint16), uint16(u))
	case u <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, mpUint32), uint32(u))
	default:
		return binary.BigEndian.AppendUint64(append(b, mpUint64), u)
	}
}

func appendInt(b []byte, i int64) []byte {
	switch {
	case i > math.MaxInt8:
		switch {
		case i <= math.MaxInt16:
			return binary.BigEndian.AppendUint16(append(b, mpInt16), uint16(i))
		case i <= math.MaxInt32:
			return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(i))
		default:
			return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(i))
		}
	case i >= -32:
		return append(b, byte(i))
	case i >= math.MinInt8:
		return append(b, mpInt8, byte(i))
	case i >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, mpInt16), uint16(i))
	case i >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(i))
	default:
		return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(i))
	}
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, mpTrue)
	}
	return append(b, mpFalse)
}

// mpReader reads the msgpack values the writers above (and mh) produce. Every method
// reports false on anything else, and the caller then hands the whole value to mh.
type mpReader struct {
	b []byte
	i int
}

// more reports whether an array of *n elements left has another, and counts it: a record
// is read field by field as (!more(&n) || read) && ..., so an older, shorter record
// leaves the fields it lacks zero, as mh does.
func more(n *int) bool {
	if *n == 0 {
		return false
	}
	*n--
	return true
}

// n returns the next k bytes.
func (r *mpReader) n(k int) ([]byte, bool) {
	if k < 0 || k > len(r.b)-r.i {
		return nil, false
	}
	v := r.b[r.i : r.i+k]
	r.i += k
	return v, true
}

func (r *mpReader) next() (byte, bool) {
	if r.i >= len(r.b) {
		return 0, false
	}
	c := r.b[r.i]
	r.i++
	return c, true
}

// length reads the big-endian length of size 1, 2 or 4 bytes.
func (r *mpReader) length(size int) (int, bool) {
	v, ok := r.n(size)
	if !ok {
		return 0, false
	}
	switch size {
	case 1:
		return int(v[0]), true
	case 2:
		return int(binary.BigEndian.Uint16(v)), true
	default:
		n := binary.BigEndian.Uint32(v)
		if uint64(n) > uint64(math.MaxInt32) {
			return 0, false
		}
		return int(n), true
	}
}

func (r *mpReader) arrayLen() (int, bool) {
	n, isNil, ok := r.arrayLenOrNil()
	return n, ok && !isNil
}

func (r *mpReader) arrayLenOrNil() (n int, isNil, ok bool) {
	c, ok := r.next()
	switch {
	case !ok:
		return 0, false, false
	case c == mpNil:
		return 0, true, true
	case c&0xf0 == mpFixArray:
		return int(c & 0x0f), false, true
	case c == mpArray16:
		n, ok = r.length(2)
	case c == mpArray32:
		n, ok = r.length(4)
	default:
		return 0, false, false
	}
	return n, false, ok
}

// raw reads a str or bin (mh reads either into a string or a []byte), or nil.
func (r *mpReader) raw() (v []byte, isNil, ok bool) {
	c, ok := r.next()
	if !ok {
		return nil, false, false
	}
	var n int
	switch {
	case c == mpNil:
		return nil, true, true
	case c&0xe0 == mpFixStr:
		n = int(c & 0x1f)
	case c == mpStr8 || c == mpBin8:
		n, ok = r.length(1)
	case c == mpStr16 || c == mpBin16:
		n, ok = r.length(2)
	case c == mpStr32 || c == mpBin32:
		n, ok = r.length(4)
	default:
		return nil, false, false
	}
	if !ok {
		return nil, false, false
	}
	v, ok = r.n(n)
	return v, false, ok
}

func (r *mpReader) str(s *string) bool {
	v, _, ok := r.raw()
	if ok {
		*s = string(v)
	}
	return ok
}

// bin copies: the input is bbolt's memory, valid only inside its transaction.
func (r *mpReader) bin(dst *[]byte) bool {
	v, isNil, ok := r.raw()
	if !ok || isNil {
		return ok
	}
	*dst = append([]byte{}, v...)
	return true
}

// readSlice reads an array of elements read by elem into dst (nil stays a nil slice,
// and an empty array is an empty one, as mh reads them).
func readSlice[T any](r *mpReader, dst *[]T, elem func(*T) bool) bool {
	n, isNil, ok := r.arrayLenOrNil()
	if !ok || isNil {
		return ok
	}
	if n > len(r.b)-r.i { // each element takes at least a byte
		return false
	}
	out := make([]T, n)
	for j := range out {
		if !elem(&out[j]) {
			return false
		}
	}
	*dst = out
	return true
}

func (r *mpReader) null() bool {
	if r.i < len(r.b) && r.b[r.i] == mpNil {
		r.i++
		return true
	}
	return false
}

func (r *mpReader) bool(v *bool) bool {
	c, ok := r.next()
	switch {
	case ok && c == mpTrue:
		*v = true
	case ok && c == mpFalse:
		*v = false
	default:
		return false
	}
	return true
}

// number reads any msgpack integer as its value and whether it is negative.
func (r *mpReader) number() (u uint64, neg, ok bool) {
	c, ok := r.next()
	if !ok {
		return 0, false, false
	}
	switch {
	case c <= 0x7f:
		return uint64(c), false, true
	case c >= mpNegFix:
		return uint64(int64(int8(c))), true, true
	}
	var size int
	switch c {
	case mpUint8, mpInt8:
		size = 1
	case mpUint16, mpInt16:
		size = 2
	case mpUint32, mpInt32:
		size = 4
	case mpUint64, mpInt64:
		size = 8
	default:
		return 0, false, false
	}
	signed := c >= mpInt8
	v, ok := r.n(size)
	if !ok {
		return 0, false, false
	}
	var x uint64
	switch size {
	case 1:
		x = uint64(v[0])
		if signed {
			x = uint64(int64(int8(v[0])))
		}
	case 2:
		x = uint64(binary.BigEndian.Uint16(v))
		if signed {
			x = uint64(int64(int16(x)))
		}
	case 4:
		x = uint64(binary.BigEndian.Uint32(v))
		if signed {
			x = uint64(int64(int32(x)))
		}
	default:
		x = binary.BigEndian.Uint64(v)
	}
	return x, signed && int64(x) < 0, true
}

func (r *mpReader) uint(v *uint64) bool {
	x, neg, ok := r.number()
	if !ok || neg {
		return false
	}
	*v = x
	return true
}

func (r *mpReader) int64(v *int64) bool {
	x, neg, ok := r.number()
	if !ok || (!neg && x > math.MaxInt64) {
		return false
	}
	*v = int64(x)
	return true
}

func (r *mpReader) goInt(v *int) bool {
	var x int64
	if !r.int64(&x) || x < math.MinInt || x > math.MaxInt {
		return false
	}
	*v = int(x)
	return true
}

func (r *mpReader) int32(v *int32) bool {
	var x int64
	if !r.int64(&x) || x < math.MinInt32 || x > math.MaxInt32 {
		return false
	}
	*v = int32(x)
	return true
}
