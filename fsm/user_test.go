package fsm

import (
	"reflect"
	"testing"
)

func strp(s string) *string { return &s }
func i32p(i int32) *int32   { return &i }

func TestRegisterUser(t *testing.T) {
	h := newHarness(t)
	r := h.mustApply(CmdRegisterUser, &RegisterUser{User: User{UID: "a", Name: "Ann", RegIndex: 99, CreateTime: 5}})
	if r.UID != "a" || r.RegIndex != 1 {
		t.Fatalf("got %+v, want uid a, regIndex 1", r)
	}
	u, ok, err := h.f.User("a")
	if err != nil || !ok {
		t.Fatalf("User: got ok=%v err=%v, want the user", ok, err)
	}
	want := User{UID: "a", Name: "Ann", RegIndex: 1, CreateTime: h.now.UnixNano()}
	if u != want {
		t.Fatalf("got %+v, want %+v (RegIndex and CreateTime come from the log)", u, want)
	}

	for _, tc := range []struct {
		name string
		uid  string
		want error
	}{
		{"exists", "a", ErrUserExists},
		{"empty uid", "", ErrInvalidArgument},
		{"NUL in uid", "a\x00b", ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.digest()
			wantErr(t, h.apply(CmdRegisterUser, &RegisterUser{User: User{UID: tc.uid, Name: "other"}}), tc.want)
			if h.digest() != before {
				t.Fatalf("a failed register changed the state")
			}
		})
	}
}

func TestUpdateUser(t *testing.T) {
	h := newHarness(t)
	h.mustApply(CmdRegisterUser, &RegisterUser{User: User{UID: "a", Name: "Ann", Email: "a@x", Gender: 1}})
	h.mustApply(CmdUpdateUser, &UpdateUser{UID: "a", Name: strp("Anna"), Gender: i32p(2), Ex: strp("")})
	u, _, err := h.f.User("a")
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if u.Name != "Anna" || u.Gender != 2 || u.Email != "a@x" || u.RegIndex != 1 {
		t.Fatalf("got %+v, want name Anna, gender 2, email kept, regIndex kept", u)
	}

	before := h.digest()
	wantErr(t, h.apply(CmdUpdateUser, &UpdateUser{UID: "nobody", Name: strp("x")}), ErrUserNotFound)
	if h.digest() != before {
		t.Fatalf("a failed update changed the state")
	}
}

func TestDeleteUsersCascades(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c", "d")
	h.mustApply(CmdImportFriends, &ImportFriends{OwnerUID: "a", FriendUIDs: []string{"b", "c"}})
	h.mustApply(CmdAddBlacklist, &AddBlacklist{OwnerUID: "a", UID: "d"})
	h.mustApply(CmdAddBlacklist, &AddBlacklist{OwnerUID: "c", UID: "a"})
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "g", Name: "g", Members: []MemberSpec{
		{UID: "a", Role: RoleOwner}, {UID: "b"}, {UID: "d", Role: RoleAdmin}}})
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "solo", Name: "solo", Members: []MemberSpec{{UID: "a", Role: RoleOwner}}})
	h.send("a", "b", SessionSingle, "hi")
	h.send("a", "g", SessionGroup, "all")

	r := h.mustApply(CmdDeleteUsers, &DeleteUsers{UIDs: []string{"nobody", "a", "a"}})
	if !reflect.DeepEqual(r.Failed, []string{"nobody", "a"}) {
		t.Fatalf("failed: got %v, want [nobody a]", r.Failed)
	}
	if _, ok, _ := h.f.User("a"); ok {
		t.Fatalf("user a still exists")
	}
	for _, tc := range []struct {
		name string
		got  func() ([]string, error)
		want []string
	}{
		{"b's friends", func() ([]string, error) { return h.f.Friends("b") }, nil},
		{"c's friends", func() ([]string, error) { return h.f.Friends("c") }, nil},
		{"a's friends", func() ([]string, error) { return h.f.Friends("a") }, nil},
		{"a's blacklist", func() ([]string, error) { return h.f.Blacklist("a") }, nil},
		{"c's blacklist", func() ([]string, error) { return h.f.Blacklist("c") }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.got()
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v (err %v), want %v", got, err, tc.want)
			}
		})
	}

	g, err := h.f.Group("g")
	if err != nil {
		t.Fatalf("group: %v", err)
	}
	if g.OwnerUID != "d" || g.MemberCount != 2 {
		t.Fatalf("got owner %q count %d, want the admin d as owner and 2 members", g.OwnerUID, g.MemberCount)
	}
	members, _ := h.f.GroupMembers("g")
	want := []GroupMember{{GroupID: "g", UID: "b", Role: RoleMember}, {GroupID: "g", UID: "d", Role: RoleOwner}}
	for i := range members {
		members[i].JoinTime = 0
	}
	if !reflect.DeepEqual(members, want) {
		t.Fatalf("members: got %+v, want %+v", members, want)
	}
	solo, _ := h.f.Group("solo")
	if solo.OwnerUID != "" || solo.MemberCount != 0 {
		t.Fatalf("emptied group: got owner %q count %d, want none and 0", solo.OwnerUID, solo.MemberCount)
	}
	if groups, _ := h.f.JoinedGroups("a"); groups != nil {
		t.Fatalf("a's groups: got %v, want none", groups)
	}

	// History stays, for the other side.
	msgs, _ := h.f.PullMessages(SingleConversationID("a", "b"), 1, 10, 0)
	gmsgs, _ := h.f.PullMessages(GroupConversationID("g"), 1, 10, 0)
	if len(msgs) != 1 || len(gmsgs) != 1 {
		t.Fatalf("got %d single and %d group messages, want 1 and 1", len(msgs), len(gmsgs))
	}
	if seqs, _ := h.f.NewestSeqs("b"); len(seqs) != 2 {
		t.Fatalf("b's conversations: got %v, want the single chat with a and g", seqs)
	}
	if seqs, _ := h.f.NewestSeqs("a"); seqs != nil {
		t.Fatalf("deleted a's conversations: got %v, want none", seqs)
	}

	// Registering again gives a new RegIndex, which is what invalidates old tokens.
	r = h.mustApply(CmdRegisterUser, &RegisterUser{User: User{UID: "a"}})
	if r.RegIndex != h.index || r.RegIndex == 1 {
		t.Fatalf("re-register: got regIndex %d, want %d", r.RegIndex, h.index)
	}
}

func TestUserReads(t *testing.T) {
	h := newHarness(t)
	h.register("c", "a", "b")
	users, err := h.f.Users([]string{"b", "nobody", "a"})
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(users) != 2 || users[0].UID != "b" || users[1].UID != "a" {
		t.Fatalf("got %+v, want b then a", users)
	}
	uids, err := h.f.AllUIDs()
	if err != nil || !reflect.DeepEqual(uids, []string{"a", "b", "c"}) {
		t.Fatalf("AllUIDs: got %v (err %v), want [a b c]", uids, err)
	}
	if _, ok, err := h.f.User("nobody"); ok || err != nil {
		t.Fatalf("unknown user: got ok=%v err=%v, want false, nil", ok, err)
	}
}
