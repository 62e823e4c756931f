package fsm

import (
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// FuzzApplyValidated checks the promise Validate makes to the leader: a command it accepts
// applies without a panic. Apply stops the node on a command it cannot apply, and every
// replica applies the same committed entry, so a command that passed Validate and then
// panicked would stop the whole cluster, again after every restart. It also applies each
// input to two replicas and compares their results and digests, so an applier that reads
// map order, the clock or randomness shows, and checks that a command that fails with a
// business error changes no data (DataDigest), as the appliers promise.
//
// The seeds are every command type with an empty body, the entries of script (users,
// friends, a group, messages, a blacklist, deletes, a prune) and a batch of them; the
// replicas start from script's state, so mutated commands meet users, groups and messages
// that exist. `go test -run x -fuzz FuzzApplyValidated ./fsm/` searches further; plain
// `go test` runs the seeds and anything saved in testdata/fuzz.
func FuzzApplyValidated(f *testing.F) {
	a, b := newHarness(f), newHarness(f)
	var packable [][]byte
	for _, l := range script(a) {
		f.Add(l.Data)
		if t, _, _, _ := Decode(l.Data); t != CmdPruneIdempotency {
			packable = append(packable, l.Data)
		}
	}
	for _, l := range script(b) {
		a.f.Apply(l)
		b.f.Apply(l)
	}
	a.index = b.index
	for t := CommandType(0); t < 64; t++ {
		if v := commandBody(t); v != nil {
			f.Add(mustEncode(f, t, nil, v))
		}
	}
	batch, err := EncodeBatch(packable)
	if err != nil {
		f.Fatalf("encode batch: %v", err)
	}
	f.Add(batch)

	f.Fuzz(func(t *testing.T, data []byte) {
		if Validate(data) != nil {
			return
		}
		a.index++
		a.now = a.now.Add(time.Second)
		entry := func() *raft.Log {
			return &raft.Log{Index: a.index, Type: raft.LogCommand, Data: append([]byte(nil), data...), AppendedAt: a.now}
		}
		before, err := a.f.DataDigest()
		if err != nil {
			t.Fatalf("digest: %v", err)
		}
		got, want := a.f.Apply(entry()), b.f.Apply(entry())
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("replicas' results differ for %x:\n%+v\n%+v", data, got, want)
		}
		da, err := a.f.Digest()
		if err != nil {
			t.Fatalf("digest: %v", err)
		}
		db, err := b.f.Digest()
		if err != nil {
			t.Fatalf("digest: %v", err)
		}
		if da != db {
			t.Fatalf("replicas' states differ after %x", data)
		}
		if r, ok := got.(*Result); ok && r != nil && r.Err != "" {
			if after, err := a.f.DataDigest(); err != nil || after != before {
				t.Fatalf("%x failed with %s but changed the data (%v)", data, r.Err, err)
			}
		}
	})
}
