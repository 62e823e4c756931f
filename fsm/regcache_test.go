package fsm

import (
	"path/filepath"
	"testing"
)

// TestUserRegIndexFollowsDeleteAndRegisterAgain: the cached RegIndex goes with its user.
func TestUserRegIndexFollowsDeleteAndRegisterAgain(t *testing.T) {
	h := newHarness(t)
	h.register("a")
	want, _, _ := h.f.User("a")
	for i := 0; i < 2; i++ { // the second read comes from the cache
		got, ok, err := h.f.UserRegIndex("a")
		if err != nil || !ok || got != want.RegIndex {
			t.Fatalf("read %d: UserRegIndex = %d, %v, %v; want %d", i, got, ok, err, want.RegIndex)
		}
	}
	if _, ok, _ := h.f.UserRegIndex("nobody"); ok {
		t.Fatal("an unknown user exists")
	}
	h.mustApply(CmdDeleteUsers, &DeleteUsers{UIDs: []string{"a"}})
	if _, ok, _ := h.f.UserRegIndex("a"); ok {
		t.Fatal("a deleted user still has a RegIndex")
	}
	h.register("a")
	again, ok, err := h.f.UserRegIndex("a")
	if err != nil || !ok || again == want.RegIndex {
		t.Fatalf("registered again: UserRegIndex = %d, %v, %v; want a new one (old %d)", again, ok, err, want.RegIndex)
	}
}

// TestUserRegIndexGroupCommit: with group commit the deletion counts once committed, and
// a read that began before the clear does not put back the old value.
func TestUserRegIndexGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	f := mustOpen(t, path, Options{CommitDelay: 50e6})
	h := &harness{t: t, f: f, path: path, now: t0}
	h.register("a")
	f.Flush()
	reg, ok, _ := f.UserRegIndex("a")
	if !ok {
		t.Fatal("a does not exist")
	}
	_, gen, _ := f.regs.get("a")
	h.mustApply(CmdDeleteUsers, &DeleteUsers{UIDs: []string{"a"}})
	f.Flush()
	if _, ok, _ := f.UserRegIndex("a"); ok {
		t.Fatal("a deleted and committed user still has a RegIndex")
	}
	f.regs.put("a", reg, gen) // a reader that read before the delete's commit
	if _, ok, _ := f.UserRegIndex("a"); ok {
		t.Fatal("a stale put survived the clear")
	}
}

// TestUserRegIndexAfterRestore: a restored state replaces what the cache knew.
func TestUserRegIndexAfterRestore(t *testing.T) {
	src := newHarness(t)
	src.register("x", "y", "b")
	state := mustState(t, src.f)

	h := newHarness(t)
	h.register("a")
	if _, ok, _ := h.f.UserRegIndex("a"); !ok {
		t.Fatal("a does not exist")
	}
	mustRestore(t, h.f, state)
	if _, ok, _ := h.f.UserRegIndex("a"); ok {
		t.Fatal("a survived a restore of a state without it")
	}
	if _, ok, _ := h.f.UserRegIndex("b"); !ok {
		t.Fatal("b of the restored state is missing")
	}
}
