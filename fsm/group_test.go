package fsm

import (
	"errors"
	"reflect"
	"testing"
)

func TestCreateGroup(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c")
	r := h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "g1", Name: "team", Introduction: "intro",
		Members: []MemberSpec{{UID: "b", Role: RoleAdmin}, {UID: "a", Role: RoleOwner}}})
	if r.GroupID != "g1" {
		t.Fatalf("got groupID %q, want g1", r.GroupID)
	}
	g, err := h.f.Group("g1")
	if err != nil {
		t.Fatalf("Group: %v", err)
	}
	want := Group{GroupID: "g1", Name: "team", Introduction: "intro", OwnerUID: "a", CreateTime: h.now.UnixNano(), MemberCount: 2}
	if g != want {
		t.Fatalf("got %+v, want %+v", g, want)
	}
	members, err := h.f.GroupMembers("g1")
	if err != nil {
		t.Fatalf("GroupMembers: %v", err)
	}
	jt := h.now.UnixNano()
	wantMembers := []GroupMember{{GroupID: "g1", UID: "a", Role: RoleOwner, JoinTime: jt}, {GroupID: "g1", UID: "b", Role: RoleAdmin, JoinTime: jt}}
	if !reflect.DeepEqual(members, wantMembers) {
		t.Fatalf("members: got %+v, want %+v", members, wantMembers)
	}
	if ok, _ := h.f.IsGroupMember("g1", "b"); !ok {
		t.Fatalf("b is not a member")
	}
	if ok, _ := h.f.IsGroupMember("g1", "c"); ok {
		t.Fatalf("c is a member")
	}
	if groups, _ := h.f.JoinedGroups("b"); len(groups) != 1 || groups[0] != want {
		t.Fatalf("b's groups: got %+v, want [g1]", groups)
	}

	owner := MemberSpec{UID: "a", Role: RoleOwner}
	for _, tc := range []struct {
		name string
		cmd  CreateGroup
		want error
	}{
		{"no owner", CreateGroup{GroupID: "g2", Name: "n", Members: []MemberSpec{{UID: "a"}}}, ErrInvalidArgument},
		{"two owners", CreateGroup{GroupID: "g2", Name: "n", Members: []MemberSpec{owner, {UID: "b", Role: RoleOwner}}}, ErrInvalidArgument},
		{"bad role", CreateGroup{GroupID: "g2", Name: "n", Members: []MemberSpec{owner, {UID: "b", Role: 3}}}, ErrInvalidArgument},
		{"duplicate uid", CreateGroup{GroupID: "g2", Name: "n", Members: []MemberSpec{owner, {UID: "a"}}}, ErrInvalidArgument},
		{"no name", CreateGroup{GroupID: "g2", Members: []MemberSpec{owner}}, ErrInvalidArgument},
		{"no members", CreateGroup{GroupID: "g2", Name: "n"}, ErrInvalidArgument},
		{"existing groupID", CreateGroup{GroupID: "g1", Name: "n", Members: []MemberSpec{owner}}, ErrInvalidArgument},
		{"NUL in groupID", CreateGroup{GroupID: "g\x00", Name: "n", Members: []MemberSpec{owner}}, ErrInvalidArgument},
		{"unknown member", CreateGroup{GroupID: "g2", Name: "n", Members: []MemberSpec{owner, {UID: "zz"}}}, ErrUserNotFound},
		{"unknown owner", CreateGroup{GroupID: "g2", Name: "n", Members: []MemberSpec{{UID: "zz", Role: RoleOwner}}}, ErrUserNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.digest()
			wantErr(t, h.apply(CmdCreateGroup, &tc.cmd), tc.want)
			if h.digest() != before {
				t.Fatalf("a failed create changed the state")
			}
		})
	}
}

func TestInviteAndKick(t *testing.T) {
	h := newHarness(t)
	h.register("a", "b", "c", "d")
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "g", Name: "g", Members: []MemberSpec{{UID: "a", Role: RoleOwner}, {UID: "b"}}})

	r := h.mustApply(CmdInviteToGroup, &InviteToGroup{GroupID: "g", UIDs: []string{"c", "b", "zz", "d", "c"}})
	wantInvite := []UIDResult{{"c", 0}, {"b", -1}, {"zz", -1}, {"d", 0}, {"c", -1}}
	if !reflect.DeepEqual(r.Results, wantInvite) {
		t.Fatalf("invite: got %v, want %v", r.Results, wantInvite)
	}
	if g, _ := h.f.Group("g"); g.MemberCount != 4 {
		t.Fatalf("after invite: got %d members, want 4", g.MemberCount)
	}
	members, _ := h.f.GroupMembers("g")
	if len(members) != 4 || members[2].UID != "c" || members[2].Role != RoleMember {
		t.Fatalf("after invite: got %+v, want a b c d with c a member", members)
	}

	r = h.mustApply(CmdKickFromGroup, &KickFromGroup{GroupID: "g", UIDs: []string{"a", "c", "zz", "c", "\x00"}})
	wantKick := []UIDResult{{"a", -1}, {"c", 0}, {"zz", -1}, {"c", -1}, {"\x00", -1}}
	if !reflect.DeepEqual(r.Results, wantKick) {
		t.Fatalf("kick: got %v, want %v", r.Results, wantKick)
	}
	if g, _ := h.f.Group("g"); g.MemberCount != 3 {
		t.Fatalf("after kick: got %d members, want 3", g.MemberCount)
	}
	if groups, _ := h.f.JoinedGroups("c"); groups != nil {
		t.Fatalf("c's groups after kick: got %v, want none", groups)
	}

	for _, tc := range []struct {
		name string
		typ  CommandType
		body interface{}
		want error
	}{
		{"invite unknown group", CmdInviteToGroup, &InviteToGroup{GroupID: "zz", UIDs: []string{"c"}}, ErrGroupNotFound},
		{"kick unknown group", CmdKickFromGroup, &KickFromGroup{GroupID: "zz", UIDs: []string{"b"}}, ErrGroupNotFound},
		{"invite NUL group", CmdInviteToGroup, &InviteToGroup{GroupID: "g\x00", UIDs: []string{"c"}}, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.digest()
			wantErr(t, h.apply(tc.typ, tc.body), tc.want)
			if h.digest() != before {
				t.Fatalf("a failed command changed the state")
			}
		})
	}
}

func TestGroupReadsOfUnknownGroup(t *testing.T) {
	h := newHarness(t)
	if _, err := h.f.Group("zz"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("Group: got %v, want %v", err, ErrGroupNotFound)
	}
	if _, err := h.f.GroupMembers("zz"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("GroupMembers: got %v, want %v", err, ErrGroupNotFound)
	}
}
