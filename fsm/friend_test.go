package fsm

import (
	"reflect"
	"testing"
)

func TestImportFriends(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c")
	h.mustApply(CmdImportFriends, &ImportFriends{OwnerUID: "a", FriendUIDs: []string{"b"}})
	for owner, want := range map[string][]string{"a": {"b"}, "b": {"a"}, "c": nil} {
		got, err := h.f.Friends(owner)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("friends of %s: got %v (err %v), want %v", owner, got, err, want)
		}
	}

	before := h.digest()
	h.mustApply(CmdImportFriends, &ImportFriends{OwnerUID: "b", FriendUIDs: []string{"a"}})
	if h.digest() != before {
		t.Fatalf("importing an existing friendship changed the state")
	}

	for _, tc := range []struct {
		name string
		cmd  ImportFriends
		want error
	}{
		{"self", ImportFriends{OwnerUID: "a", FriendUIDs: []string{"a"}}, ErrSelf},
		{"unknown friend", ImportFriends{OwnerUID: "a", FriendUIDs: []string{"zz"}}, ErrUserNotFound},
		{"unknown owner", ImportFriends{OwnerUID: "zz", FriendUIDs: []string{"a", "b"}}, ErrUserNotFound},
		{"no friends", ImportFriends{OwnerUID: "a"}, ErrInvalidArgument},
		{"NUL owner", ImportFriends{OwnerUID: "a\x00", FriendUIDs: []string{"b"}}, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.digest()
			wantErr(t, h.apply(CmdImportFriends, &tc.cmd), tc.want)
			if h.digest() != before {
				t.Fatalf("a failed import changed the state")
			}
		})
	}
}

func TestImportFriendsListReportsFailures(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c")
	r := h.mustApply(CmdImportFriends, &ImportFriends{OwnerUID: "a", FriendUIDs: []string{"zz", "b", "a", "c", "b"}})
	if !reflect.DeepEqual(r.Failed, []string{"zz", "a"}) {
		t.Fatalf("failed: got %v, want [zz a]", r.Failed)
	}
	got, _ := h.f.Friends("a")
	if !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Fatalf("friends: got %v, want [b c]", got)
	}
}

func TestAddBlacklist(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	h.mustApply(CmdAddBlacklist, &AddBlacklist{OwnerUID: "a", UID: "b"})
	if got, _ := h.f.Blacklist("a"); !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("a's blacklist: got %v, want [b]", got)
	}
	if got, _ := h.f.Blacklist("b"); got != nil {
		t.Fatalf("b's blacklist: got %v, want none (blocking is one-way)", got)
	}
	before := h.digest()
	h.mustApply(CmdAddBlacklist, &AddBlacklist{OwnerUID: "a", UID: "b"})
	if h.digest() != before {
		t.Fatalf("blocking twice changed the state")
	}

	for _, tc := range []struct {
		name string
		cmd  AddBlacklist
		want error
	}{
		{"self", AddBlacklist{OwnerUID: "a", UID: "a"}, ErrSelf},
		{"unknown target", AddBlacklist{OwnerUID: "a", UID: "zz"}, ErrUserNotFound},
		{"unknown owner", AddBlacklist{OwnerUID: "zz", UID: "a"}, ErrUserNotFound},
		{"empty uid", AddBlacklist{OwnerUID: "a"}, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, h.apply(CmdAddBlacklist, &tc.cmd), tc.want)
			if h.digest() != before {
				t.Fatalf("a failed blacklist changed the state")
			}
		})
	}
}
