package fsm

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// slowEncode and slowDecode are the reflection codec alone, the reference fastcodec.go
// must match byte for byte.
func slowEncode(t *testing.T, v interface{}) []byte {
	t.Helper()
	var b []byte
	if err := codec.NewEncoderBytes(&b, mh).Encode(v); err != nil {
		t.Fatalf("mh encode %T: %v", v, err)
	}
	return b
}

func slowDecode(b []byte, v interface{}) error { return codec.NewDecoderBytes(b, mh).Decode(v) }

// randomizer makes values that reach every size class of the msgpack forms.
type randomizer struct{ r *rand.Rand }

func (g randomizer) str() string {
	switch g.r.Intn(6) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("é", 16+g.r.Intn(200)) // str8 (multi-byte runes)
	case 2:
		return strings.Repeat("x", 256+g.r.Intn(70000)) // str16 and str32
	default:
		return strings.Repeat("a", g.r.Intn(32))
	}
}

func (g randomizer) bytes() []byte {
	switch g.r.Intn(5) {
	case 0:
		return nil
	case 1:
		return []byte{}
	case 2:
		return bytes.Repeat([]byte{0xc0}, 256+g.r.Intn(70000))
	default:
		return bytes.Repeat([]byte{'{'}, g.r.Intn(256))
	}
}

func (g randomizer) strs() []string {
	switch g.r.Intn(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	out := make([]string, g.r.Intn(20))
	for i := range out {
		out[i] = g.str()
	}
	return out
}

// int64 covers every boundary of the integer forms, both signs.
func (g randomizer) int64() int64 {
	edges := []int64{0, 1, -1, 31, 32, -32, -33, 127, 128, -128, -129, 255, 256, 32767, 32768,
		-32768, -32769, 65535, 65536, math.MaxInt32, math.MaxInt32 + 1, math.MinInt32,
		math.MinInt32 - 1, math.MaxInt64, math.MinInt64, 1796552738329490924}
	if g.r.Intn(2) == 0 {
		return edges[g.r.Intn(len(edges))]
	}
	return g.r.Int63() >> g.r.Intn(63) * int64(1-2*g.r.Intn(2))
}

func (g randomizer) uint64() uint64 {
	edges := []uint64{0, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
	if g.r.Intn(2) == 0 {
		return edges[g.r.Intn(len(edges))]
	}
	return g.r.Uint64() >> g.r.Intn(64)
}

func (g randomizer) int32() int32 {
	return int32(max(math.MinInt32, min(math.MaxInt32, g.int64())))
}

func (g randomizer) message() *Message {
	return &Message{ConversationID: g.str(), Seq: g.uint64(), MsgID: g.str(), SendID: g.str(),
		RecvID: g.str(), SenderNickName: g.str(), SenderFaceURL: g.str(), SessionType: g.int32(),
		ContentType: g.int32(), Content: g.bytes(), ForceList: g.strs(), SendTime: g.int64(),
		Revoked: g.r.Intn(2) == 0, RevokerUID: g.str(), RevokeTime: g.int64()}
}

func (g randomizer) sendMessage() *SendMessage {
	return &SendMessage{MsgID: g.str(), SendID: g.str(), RecvID: g.str(), SenderNickName: g.str(),
		SenderFaceURL: g.str(), SessionType: g.int32(), ContentType: g.int32(), Content: g.bytes(),
		ForceList: g.strs()}
}

func (g randomizer) convRec() *convRec {
	c := &convRec{MaxSeq: g.uint64(), LastSendTime: g.int64(), Pair: g.strs(), MinSeq: g.uint64()}
	if g.r.Intn(3) > 0 {
		c.Tail = make([]uint64, g.r.Intn(40))
		for i := range c.Tail {
			c.Tail[i] = g.uint64()
		}
	}
	return c
}

func (g randomizer) result() *Result {
	return &Result{Err: g.str(), UID: g.str(), RegIndex: g.uint64(), GroupID: g.str(), MsgID: g.str(),
		SendTime: g.int64(), Seq: g.uint64(), ConversationID: g.str(), Failed: g.strs(),
		Replayed: g.r.Intn(2) == 0, Pruned: int(g.int64())}
}

func (g randomizer) binSlice() [][]byte {
	if g.r.Intn(4) == 0 {
		return nil
	}
	out := make([][]byte, g.r.Intn(20))
	for i := range out {
		out[i] = g.bytes()
	}
	return out
}

// TestFastCodecMatchesReflection: for random values of every fast type, EncodeValue writes
// mh's bytes, and DecodeValue reads them into what mh reads (nil and empty slices apart).
func TestFastCodecMatchesReflection(t *testing.T) {
	g := randomizer{rand.New(rand.NewSource(1))}
	for i := 0; i < 400; i++ {
		values := []struct {
			v   interface{}
			new func() interface{}
		}{
			{g.message(), func() interface{} { return new(Message) }},
			{g.sendMessage(), func() interface{} { return new(SendMessage) }},
			{*g.sendMessage(), func() interface{} { return new(SendMessage) }},
			{g.convRec(), func() interface{} { return new(convRec) }},
			{g.result(), func() interface{} { return new(Result) }},
			{g.binSlice(), func() interface{} { return new([][]byte) }},
		}
		for _, c := range values {
			want := slowEncode(t, c.v)
			got, err := EncodeValue(c.v)
			if err != nil {
				t.Fatalf("EncodeValue(%T): %v", c.v, err)
			}
			if _, ok := fastEncode(c.v); !ok {
				t.Fatalf("%T did not take the fast path", c.v)
			}
			if n, _ := fastSize(c.v); len(got) != n || cap(got) != n {
				t.Fatalf("%T #%d: %d bytes encoded into a slice of capacity %d, fastSize said %d", c.v, i, len(got), cap(got), n)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%T #%d: fast bytes differ from mh's\nfast %x\nmh   %x", c.v, i, head(got), head(want))
			}
			key := idemKey(fmt.Sprint(i))
			if cmd, err := Encode(CmdSendMessage, key, c.v); err != nil || !bytes.Equal(cmd, append(append([]byte{byte(CmdSendMessage), IdemKeyLen}, key...), want...)) || cap(cmd) != len(cmd) {
				t.Fatalf("%T #%d: Encode wrote %x (capacity %d, err %v), not the header and mh's bytes", c.v, i, head(cmd), cap(cmd), err)
			}
			fast, slow := c.new(), c.new()
			if err := fastDecode(want, fast); err != nil {
				t.Fatalf("%T #%d: fast decode refused mh's bytes: %v", c.v, i, err)
			}
			if err := slowDecode(want, slow); err != nil {
				t.Fatalf("%T #%d: mh decode: %v", c.v, i, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%T #%d: fast decode differs from mh's\nfast %#v\nmh   %#v", c.v, i, fast, slow)
			}
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 80)] }

// TestFastEncodingAllocatesOnce: a message write encodes its command, its record and its
// result each into one allocation of the right size, not one that append must grow.
func TestFastEncodingAllocatesOnce(t *testing.T) {
	content := bytes.Repeat([]byte("x"), 300)
	send := &SendMessage{MsgID: "2ac5f0eb180226b957dff73f9f66efa0", SendID: "imb00001", RecvID: "imb00002",
		SessionType: SessionSingle, ContentType: 101, Content: content}
	m := &Message{ConversationID: "si_imb00001_imb00002", Seq: 123456, MsgID: send.MsgID, SendID: send.SendID,
		RecvID: send.RecvID, SessionType: SessionSingle, ContentType: 101, Content: content,
		SendTime: 1796552738329490924}
	res := &Result{MsgID: m.MsgID, SendTime: m.SendTime, Seq: m.Seq, ConversationID: m.ConversationID}
	rec := &convRec{MaxSeq: 9, LastSendTime: m.SendTime, Pair: []string{m.SendID, m.RecvID}, Tail: []uint64{1, 2, 3}}
	key := idemKey("once")
	for name, encode := range map[string]func() error{
		"command": func() error { _, err := Encode(CmdSendMessage, key, send); return err },
		"message": func() error { _, err := EncodeValue(m); return err },
		"result":  func() error { _, err := EncodeValue(res); return err },
		"record":  func() error { _, err := EncodeValue(rec); return err },
	} {
		if n := testing.AllocsPerRun(100, func() {
			if err := encode(); err != nil {
				t.Fatal(err)
			}
		}); n != 1 {
			t.Errorf("%s: %v allocations, want 1", name, n)
		}
	}
}

// TestFastDecodeOlderShorterRecords: a record written before its last fields existed (a
// shorter array) decodes with those fields zero, as mh decodes it.
func TestFastDecodeOlderShorterRecords(t *testing.T) {
	g := randomizer{rand.New(rand.NewSource(2))}
	m := g.message()
	full := slowEncode(t, m)
	// Rebuild the array with only its first k elements.
	for k := 0; k <= 15; k++ {
		r := mpReader{b: full}
		if _, ok := r.arrayLen(); !ok {
			t.Fatal("no array")
		}
		start := r.i
		for j := 0; j < k; j++ {
			if !skipValue(&r) {
				t.Fatalf("skip field %d", j)
			}
		}
		short := append(appendArrayLen(nil, k), full[start:r.i]...)
		var fast, slow Message
		if err := fastDecode(short, &fast); err != nil {
			t.Fatalf("k=%d: fast decode: %v", k, err)
		}
		if err := slowDecode(short, &slow); err != nil {
			t.Fatalf("k=%d: mh decode: %v", k, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("k=%d: fast %#v, mh %#v", k, fast, slow)
		}
	}
}

// skipValue steps over one value of the forms the fast types use.
func skipValue(r *mpReader) bool {
	if r.i >= len(r.b) {
		return false
	}
	c := r.b[r.i]
	switch {
	case c == mpNil:
		r.i++
		return true
	case c == mpTrue || c == mpFalse:
		var b bool
		return r.bool(&b)
	case c&0xf0 == mpFixArray || c == mpArray16 || c == mpArray32:
		n, _ := r.arrayLen()
		for j := 0; j < n; j++ {
			if !skipValue(r) {
				return false
			}
		}
		return true
	case c&0xe0 == mpFixStr || (c >= mpBin8 && c <= mpBin32) || (c >= mpStr8 && c <= mpStr32):
		_, _, ok := r.raw()
		return ok
	default:
		_, _, ok := r.number()
		return ok
	}
}

// TestFastDecodeLeavesTheRestToReflection: what the fast reader does not expect (a
// Results list, a longer array from a newer version, a map, garbage) goes to mh, so
// DecodeValue answers exactly what mh answers.
func TestFastDecodeLeavesTheRestToReflection(t *testing.T) {
	withResults := &Result{UID: "u", Results: []UIDResult{{UID: "a", Result: 1}}}
	if _, ok := fastEncode(withResults); ok {
		t.Fatal("a Result with Results took the fast path")
	}
	enc, err := EncodeValue(withResults)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, slowEncode(t, withResults)) {
		t.Fatal("slow path bytes differ")
	}
	var got Result
	if err := DecodeValue(enc, &got); err != nil || !reflect.DeepEqual(&got, withResults) {
		t.Fatalf("decode = %#v, %v", got, err)
	}

	longer := append(appendArrayLen(nil, 16), slowEncode(t, &Message{})[1:]...)
	longer = appendStr(longer, "a future field")
	if fastDecode(longer, new(Message)) != errSlowPath {
		t.Fatal("a 16-element message took the fast path")
	}
	for _, bad := range [][]byte{nil, {0x80}, {0x9f}, {0x9f, 0xd9}, {0x93, 0xa1}, {0xc1}, {0x91, 0xcf, 1}} {
		var a, b Message
		errFast := DecodeValue(bad, &a)
		errSlow := slowDecode(bad, &b)
		if (errFast == nil) != (errSlow == nil) || !reflect.DeepEqual(a, b) {
			t.Fatalf("%x: DecodeValue = %#v, %v; mh = %#v, %v", bad, a, errFast, b, errSlow)
		}
	}
}

// TestFastDecodeCopiesBytes: decoded []byte fields do not alias the input (bbolt's
// memory is valid only inside its transaction).
func TestFastDecodeCopiesBytes(t *testing.T) {
	in := slowEncode(t, &Message{Content: []byte(`{"text":"hi"}`)})
	var m Message
	if err := DecodeValue(in, &m); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 0
	}
	if string(m.Content) != `{"text":"hi"}` {
		t.Fatalf("content changed with the input: %q", m.Content)
	}
}

func BenchmarkCodecMessage(b *testing.B) {
	m := &Message{ConversationID: "si_imb00001_imb00002", Seq: 123456, MsgID: "2ac5f0eb180226b957dff73f9f66efa0",
		SendID: "imb00001", RecvID: "imb00002", SessionType: 1, ContentType: 101,
		Content: bytes.Repeat([]byte("x"), 300), SendTime: 1796552738329490924}
	enc, _ := EncodeValue(m)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			e, _ := EncodeValue(m)
			var d Message
			_ = DecodeValue(e, &d)
		}
	})
	b.Run("reflection", func(b *testing.B) {
		for b.Loop() {
			var e []byte
			_ = codec.NewEncoderBytes(&e, mh).Encode(m)
			var d Message
			_ = slowDecode(enc, &d)
		}
	})
}
