package fsm

import (
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

// relHarness is a harness that records the notices its commits produce.
func relHarness(t *testing.T) (*harness, func() []Notice) {
	t.Helper()
	var mu sync.Mutex
	var got []Notice
	path := filepath.Join(t.TempDir(), "fsm.db")
	f := mustOpen(t, path, Options{OnNotices: func(ns []Notice) {
		mu.Lock()
		got = append(got, ns...)
		mu.Unlock()
	}})
	h := &harness{t: t, f: f, path: path, now: t0}
	return h, func() []Notice {
		mu.Lock()
		defer mu.Unlock()
		out := got
		got = nil
		return out
	}
}

func relFriends(t *testing.T, f *FSM, uid string) []string {
	t.Helper()
	l, err := f.Friends(uid)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestDeleteFriendEndsBothSides(t *testing.T) {
	h, notices := relHarness(t)
	h.register("a", "b", "c")
	h.mustApply(CmdImportFriends, &ImportFriends{OwnerUID: "a", FriendUIDs: []string{"b", "c"}})
	notices()

	h.mustApply(CmdDeleteFriend, &DeleteFriend{OwnerUID: "b", UID: "a"})
	if got := relFriends(t, h.f, "a"); !reflect.DeepEqual(got, []string{"c"}) {
		t.Fatalf("a's friends after b ended it: %v, want [c]", got)
	}
	if got := relFriends(t, h.f, "b"); len(got) != 0 {
		t.Fatalf("b's friends: %v, want none", got)
	}
	ns := notices()
	if len(ns) != 1 || ns[0].Type != "friend_deleted" || !reflect.DeepEqual(ns[0].UIDs, []string{"b", "a"}) {
		t.Fatalf("notices: %+v, want one friend_deleted to b and a", ns)
	}
	if ok, _ := h.f.IsFriend("a", "b"); ok {
		t.Fatalf("IsFriend(a, b) after delete: true")
	}
	if ok, _ := h.f.IsFriend("a", "c"); !ok {
		t.Fatalf("IsFriend(a, c): false, want true")
	}

	before := h.digest()
	for _, tc := range []struct {
		name string
		c    *DeleteFriend
		want error
	}{
		{"not friends any more", &DeleteFriend{OwnerUID: "a", UID: "b"}, ErrNotFriend},
		{"self", &DeleteFriend{OwnerUID: "a", UID: "a"}, ErrSelf},
		{"unknown owner", &DeleteFriend{OwnerUID: "zz", UID: "a"}, ErrUserNotFound},
		{"unknown uid", &DeleteFriend{OwnerUID: "a", UID: "zz"}, ErrUserNotFound},
		{"empty", &DeleteFriend{OwnerUID: "", UID: "a"}, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdDeleteFriend, tc.c), tc.want) })
	}
	if h.digest() != before || len(notices()) != 0 {
		t.Fatalf("a refused delete_friend changed the state or told someone")
	}
}

func TestRemoveBlacklistLetsTheSenderSendAgain(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b")
	h.mustApply(CmdAddBlacklist, &AddBlacklist{OwnerUID: "b", UID: "a"})
	wantErr(t, h.send("a", "b", SessionSingle, "hi"), ErrBlocked)

	h.mustApply(CmdRemoveBlacklist, &RemoveBlacklist{OwnerUID: "b", UID: "a"})
	if r := h.send("a", "b", SessionSingle, "hi"); r.Err != "" || r.Seq != 1 {
		t.Fatalf("send after unblock: %+v, want seq 1", r)
	}
	if l, _ := h.f.Blacklist("b"); len(l) != 0 {
		t.Fatalf("b's blacklist after remove: %v", l)
	}
	// The reverse index is gone too: deleting a leaves nothing behind to trip over.
	h.mustApply(CmdDeleteUsers, &DeleteUsers{UIDs: []string{"a"}})

	before := h.digest()
	defer func() {
		if h.digest() != before {
			t.Errorf("refused remove_blacklist requests changed the state")
		}
	}()
	for _, tc := range []struct {
		name string
		c    *RemoveBlacklist
		want error
	}{
		{"not blocked", &RemoveBlacklist{OwnerUID: "b", UID: "b2"}, ErrUserNotFound},
		{"self", &RemoveBlacklist{OwnerUID: "b", UID: "b"}, ErrSelf},
		{"deleted uid", &RemoveBlacklist{OwnerUID: "b", UID: "a"}, ErrUserNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdRemoveBlacklist, tc.c), tc.want) })
	}
	h.register("c")
	before = h.digest()
	wantErr(t, h.apply(CmdRemoveBlacklist, &RemoveBlacklist{OwnerUID: "b", UID: "c"}), ErrNotInBlacklist)
	if h.digest() != before {
		t.Fatalf("a refused remove_blacklist changed the state")
	}
}

func TestFriendsInfo(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c")
	h.mustApply(CmdImportFriends, &ImportFriends{OwnerUID: "a", FriendUIDs: []string{"b"}})
	got, err := h.f.FriendsInfo("a", []string{"b", "c", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].IsFriend || got[0].User.Name != "name b" || got[0].CreateTime == 0 ||
		got[1].IsFriend || got[2].IsFriend || got[2].UID != "nobody" {
		t.Fatalf("FriendsInfo: %+v", got)
	}
}
