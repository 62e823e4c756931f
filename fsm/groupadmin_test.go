package fsm

import (
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// relGroup makes group g1 of owner o, admin ad and members m1, m2.
func relGroup(h *harness) {
	h.register("o", "ad", "m1", "m2", "out")
	h.mustApply(CmdCreateGroup, &CreateGroup{GroupID: "g1", Name: "team", Members: []MemberSpec{
		{UID: "o", Role: RoleOwner}, {UID: "ad", Role: RoleAdmin}, {UID: "m1"}, {UID: "m2"}}})
}

func relMember(t *testing.T, f *FSM, uid string) (GroupMember, bool) {
	t.Helper()
	ms, err := f.GroupMembers("g1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.UID == uid {
			return m, true
		}
	}
	return GroupMember{}, false
}

func TestSetGroupInfoChangesOnlyTheFieldsPresent(t *testing.T) {
	h, notices := relHarness(t)
	relGroup(h)
	notices()
	h.mustApply(CmdSetGroupInfo, &SetGroupInfo{GroupID: "g1", OpUID: "ad", Notification: strp("read me"), Ex: strp(`{"k":1}`)})
	g, err := h.f.Group("g1")
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "team" || g.Notification != "read me" || g.Ex != `{"k":1}` {
		t.Fatalf("group after set_group_info: %+v", g)
	}
	ns := notices()
	if len(ns) != 1 || ns[0].Type != "group_info_changed" || len(ns[0].UIDs) != 4 ||
		ns[0].Fields["notification"] != "read me" || ns[0].Fields["groupName"] != nil {
		t.Fatalf("notices: %+v", ns)
	}
	h.mustApply(CmdSetGroupInfo, &SetGroupInfo{GroupID: "g1", Name: strp("renamed")}) // app admin
	notices()

	before := h.digest()
	for _, tc := range []struct {
		name string
		c    *SetGroupInfo
		want error
	}{
		{"ordinary member", &SetGroupInfo{GroupID: "g1", OpUID: "m1", Name: strp("x")}, ErrNoGroupPermission},
		{"outsider", &SetGroupInfo{GroupID: "g1", OpUID: "out", Name: strp("x")}, ErrNoGroupPermission},
		{"unknown group", &SetGroupInfo{GroupID: "nope", Name: strp("x")}, ErrGroupNotFound},
		{"empty name", &SetGroupInfo{GroupID: "g1", Name: strp("")}, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdSetGroupInfo, tc.c), tc.want) })
	}
	if h.digest() != before || len(notices()) != 0 {
		t.Fatalf("a refused set_group_info changed the state or told someone")
	}
}

func TestQuitAndTransferGroup(t *testing.T) {
	h, notices := relHarness(t)
	relGroup(h)
	notices()
	wantErr(t, h.apply(CmdQuitGroup, &QuitGroup{GroupID: "g1", UID: "o"}), ErrOwnerMustTransfer)
	wantErr(t, h.apply(CmdQuitGroup, &QuitGroup{GroupID: "g1", UID: "out"}), ErrNotGroupMember)
	wantErr(t, h.apply(CmdQuitGroup, &QuitGroup{GroupID: "g1", UID: "ghost"}), ErrUserNotFound)
	h.mustApply(CmdQuitGroup, &QuitGroup{GroupID: "g1", UID: "m2"})
	if _, in := relMember(t, h.f, "m2"); in {
		t.Fatalf("m2 still a member after quitting")
	}
	if g, _ := h.f.Group("g1"); g.MemberCount != 3 {
		t.Fatalf("member count %d, want 3", g.MemberCount)
	}
	if ns := notices(); len(ns) != 1 || ns[0].Type != "group_quit" || len(ns[0].UIDs) != 4 {
		t.Fatalf("notices: %+v, want group_quit to the 4 members including the one who left", ns)
	}
	wantErr(t, h.send("m2", "g1", SessionGroup, "still here?"), ErrNotGroupMember)

	before := h.digest()
	for _, tc := range []struct {
		name string
		c    *TransferGroup
		want error
	}{
		{"by an admin", &TransferGroup{GroupID: "g1", OpUID: "ad", OldOwnerUID: "o", NewOwnerUID: "ad"}, ErrNoGroupPermission},
		{"wrong old owner", &TransferGroup{GroupID: "g1", OldOwnerUID: "ad", NewOwnerUID: "m1"}, ErrNotGroupOwner},
		{"to a non-member", &TransferGroup{GroupID: "g1", OldOwnerUID: "o", NewOwnerUID: "out"}, ErrNotGroupMember},
		{"to an unknown user", &TransferGroup{GroupID: "g1", OldOwnerUID: "o", NewOwnerUID: "ghost"}, ErrUserNotFound},
		{"to oneself", &TransferGroup{GroupID: "g1", OldOwnerUID: "o", NewOwnerUID: "o"}, ErrSelf},
		{"unknown group", &TransferGroup{GroupID: "nope", OldOwnerUID: "o", NewOwnerUID: "m1"}, ErrGroupNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdTransferGroup, tc.c), tc.want) })
	}
	if h.digest() != before {
		t.Fatalf("a refused transfer changed the state")
	}
	h.mustApply(CmdTransferGroup, &TransferGroup{GroupID: "g1", OpUID: "o", OldOwnerUID: "o", NewOwnerUID: "m1"})
	g, _ := h.f.Group("g1")
	m1, _ := relMember(t, h.f, "m1")
	o, _ := relMember(t, h.f, "o")
	if g.OwnerUID != "m1" || m1.Role != RoleOwner || o.Role != RoleMember {
		t.Fatalf("after transfer: owner %q, m1 role %d, o role %d", g.OwnerUID, m1.Role, o.Role)
	}
	// Now the old owner may leave.
	h.mustApply(CmdQuitGroup, &QuitGroup{GroupID: "g1", UID: "o"})
}

func TestDismissedGroupRefusesSendsAndChangesButKeepsHistory(t *testing.T) {
	h, notices := relHarness(t)
	relGroup(h)
	h.send("m1", "g1", SessionGroup, "before")
	notices()
	wantErr(t, h.apply(CmdDismissGroup, &DismissGroup{GroupID: "g1", OpUID: "ad"}), ErrNoGroupPermission)
	h.mustApply(CmdDismissGroup, &DismissGroup{GroupID: "g1", OpUID: "o"})
	if ns := notices(); len(ns) != 1 || ns[0].Type != "group_dismissed" || len(ns[0].UIDs) != 4 {
		t.Fatalf("notices: %+v", ns)
	}
	g, _ := h.f.Group("g1")
	if g.Status != GroupDismissed {
		t.Fatalf("status %d, want dismissed", g.Status)
	}
	before := h.digest()
	wantErr(t, h.send("m1", "g1", SessionGroup, "after"), ErrGroupDismissed)
	wantErr(t, h.apply(CmdDismissGroup, &DismissGroup{GroupID: "g1"}), ErrGroupDismissed)
	wantErr(t, h.apply(CmdSetGroupInfo, &SetGroupInfo{GroupID: "g1", Name: strp("x")}), ErrGroupDismissed)
	wantErr(t, h.apply(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", UID: "m1", Seconds: 60}), ErrGroupDismissed)
	wantErr(t, h.apply(CmdTransferGroup, &TransferGroup{GroupID: "g1", OldOwnerUID: "o", NewOwnerUID: "m1"}), ErrGroupDismissed)
	wantErr(t, h.apply(CmdInviteToGroup, &InviteToGroup{GroupID: "g1", UIDs: []string{"out"}}), ErrGroupDismissed)
	wantErr(t, h.apply(CmdKickFromGroup, &KickFromGroup{GroupID: "g1", UIDs: []string{"m1"}}), ErrGroupDismissed)
	if h.digest() != before {
		t.Fatalf("refused commands changed a dismissed group")
	}
	if msgs := h.pull(GroupConversationID("g1")); len(msgs) != 1 {
		t.Fatalf("history of the dismissed group: %d messages, want 1", len(msgs))
	}
	// Its owner may leave it without a transfer.
	h.mustApply(CmdQuitGroup, &QuitGroup{GroupID: "g1", UID: "o"})
}

func TestMuteUsesTheLogTime(t *testing.T) {
	h, notices := relHarness(t)
	relGroup(h)
	notices()
	h.mustApply(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", OpUID: "ad", UID: "m1", Seconds: 3})
	m1, _ := relMember(t, h.f, "m1")
	if want := h.now.Add(3 * time.Second).UnixNano(); m1.MuteEnd != want {
		t.Fatalf("mute end %d, want the entry's time + 3 s = %d", m1.MuteEnd, want)
	}
	if ns := notices(); len(ns) != 1 || ns[0].Type != "group_member_muted" {
		t.Fatalf("notices: %+v", ns)
	}
	// Each harness entry is one second later in log time.
	wantErr(t, h.send("m1", "g1", SessionGroup, "1 s"), ErrMuted)
	wantErr(t, h.send("m1", "g1", SessionGroup, "2 s"), ErrMuted)
	if r := h.send("m1", "g1", SessionGroup, "3 s"); r.Err != "" {
		t.Fatalf("send at the mute's end: %v", r.Error())
	}
	h.mustApply(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", UID: "m2", Seconds: 3600})
	wantErr(t, h.send("m2", "g1", SessionGroup, "x"), ErrMuted)
	h.mustApply(CmdCancelMuteGroupMember, &CancelMuteGroupMember{GroupID: "g1", OpUID: "o", UID: "m2"})
	if r := h.send("m2", "g1", SessionGroup, "free"); r.Err != "" {
		t.Fatalf("send after cancel_mute: %v", r.Error())
	}

	before := h.digest()
	for _, tc := range []struct {
		name string
		c    *MuteGroupMember
		want error
	}{
		{"the owner", &MuteGroupMember{GroupID: "g1", UID: "o", Seconds: 60}, ErrOwnerUntouchable},
		{"by a member", &MuteGroupMember{GroupID: "g1", OpUID: "m1", UID: "m2", Seconds: 60}, ErrNoGroupPermission},
		{"by an outsider", &MuteGroupMember{GroupID: "g1", OpUID: "out", UID: "m2", Seconds: 60}, ErrNoGroupPermission},
		{"a non-member", &MuteGroupMember{GroupID: "g1", UID: "out", Seconds: 60}, ErrNotGroupMember},
		{"an unknown user", &MuteGroupMember{GroupID: "g1", UID: "ghost", Seconds: 60}, ErrUserNotFound},
		{"zero seconds", &MuteGroupMember{GroupID: "g1", UID: "m1", Seconds: 0}, ErrInvalidArgument},
		{"too long", &MuteGroupMember{GroupID: "g1", UID: "m1", Seconds: MaxMuteSeconds + 1}, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdMuteGroupMember, tc.c), tc.want) })
	}
	if h.digest() != before {
		t.Fatalf("a refused mute changed the state")
	}
}

// A group admin acts only on ordinary members: not on another admin, and not on
// themselves, so an admin the owner muted cannot lift the mute.
func TestAdminCannotActOnAdmins(t *testing.T) {
	h := newHarness(t)
	relGroup(h)
	h.mustApply(CmdSetGroupMemberInfo, &SetGroupMemberInfo{GroupID: "g1", OpUID: "o", UID: "m1", Role: RoleAdmin})
	h.mustApply(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", OpUID: "o", UID: "ad", Seconds: 600})
	before := h.digest()
	wantErr(t, h.apply(CmdCancelMuteGroupMember, &CancelMuteGroupMember{GroupID: "g1", OpUID: "ad", UID: "ad"}), ErrNoGroupPermission)
	wantErr(t, h.apply(CmdCancelMuteGroupMember, &CancelMuteGroupMember{GroupID: "g1", OpUID: "m1", UID: "ad"}), ErrNoGroupPermission)
	wantErr(t, h.apply(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", OpUID: "ad", UID: "m1", Seconds: 60}), ErrNoGroupPermission)
	wantErr(t, h.apply(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", OpUID: "m1", UID: "m1", Seconds: 60}), ErrNoGroupPermission)
	if h.digest() != before {
		t.Fatalf("an admin's refused action on an admin changed the state")
	}
	wantErr(t, h.send("ad", "g1", SessionGroup, "still muted"), ErrMuted)
	// The owner may lift it; an admin still acts on ordinary members.
	h.mustApply(CmdCancelMuteGroupMember, &CancelMuteGroupMember{GroupID: "g1", OpUID: "o", UID: "ad"})
	h.mustApply(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", OpUID: "ad", UID: "m2", Seconds: 60})
}

// A muted admin who inherits a group from its deleted owner is not muted any more: an
// owner cannot be muted, nor unmuted by anyone, so the mute would hold for its whole length.
func TestHeirOfADeletedOwnerIsNotMuted(t *testing.T) {
	h := newHarness(t)
	relGroup(h)
	h.mustApply(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", UID: "ad", Seconds: 3600})
	h.mustApply(CmdDeleteUsers, &DeleteUsers{UIDs: []string{"o"}})
	ad, _ := relMember(t, h.f, "ad")
	if g, _ := h.f.Group("g1"); g.OwnerUID != "ad" || ad.Role != RoleOwner {
		t.Fatalf("heir: owner %q, ad role %d, want ad the owner", g.OwnerUID, ad.Role)
	}
	if ad.MuteEnd != 0 {
		t.Fatalf("the new owner's mute end %d, want 0", ad.MuteEnd)
	}
	if r := h.send("ad", "g1", SessionGroup, "the owner speaks"); r.Err != "" {
		t.Fatalf("send by the new owner: %v", r.Error())
	}
}

func TestSetGroupMemberRole(t *testing.T) {
	h := newHarness(t)
	relGroup(h)
	h.mustApply(CmdSetGroupMemberInfo, &SetGroupMemberInfo{GroupID: "g1", OpUID: "o", UID: "m1", Role: RoleAdmin})
	if m, _ := relMember(t, h.f, "m1"); m.Role != RoleAdmin {
		t.Fatalf("m1 role %d, want admin", m.Role)
	}
	before := h.digest()
	for _, tc := range []struct {
		name string
		c    *SetGroupMemberInfo
		want error
	}{
		{"by an admin", &SetGroupMemberInfo{GroupID: "g1", OpUID: "ad", UID: "m2", Role: RoleAdmin}, ErrNoGroupPermission},
		{"the owner", &SetGroupMemberInfo{GroupID: "g1", UID: "o", Role: RoleMember}, ErrOwnerUntouchable},
		{"to owner", &SetGroupMemberInfo{GroupID: "g1", UID: "m2", Role: RoleOwner}, ErrInvalidArgument},
		{"a non-member", &SetGroupMemberInfo{GroupID: "g1", UID: "out", Role: RoleAdmin}, ErrNotGroupMember},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, h.apply(CmdSetGroupMemberInfo, tc.c), tc.want) })
	}
	if h.digest() != before {
		t.Fatalf("a refused role change changed the state")
	}
}

func TestGroupsLookup(t *testing.T) {
	h := newHarness(t)
	relGroup(h)
	gs, err := h.f.Groups([]string{"g1"})
	if err != nil || len(gs) != 1 || gs[0].Name != "team" {
		t.Fatalf("Groups: %+v %v", gs, err)
	}
	if _, err := h.f.Groups([]string{"g1", "nope"}); err == nil || !reflect.DeepEqual(err.(*NotFoundError).ID, "nope") {
		t.Fatalf("Groups with an unknown id: %v", err)
	}
}

// relScript applies every relation and group command once and returns the entries, so
// that they can be replayed elsewhere.
func relScript(h *harness) []*raft.Log {
	var out []*raft.Log
	add := func(typ CommandType, body interface{}) {
		l := h.next(typ, nil, body)
		out = append(out, l)
		if r := asResult(h.t, h.f.Apply(l)); r.Err != "" {
			h.t.Fatalf("script %s: %s", typ, r.Err)
		}
	}
	for _, uid := range []string{"a", "b", "o", "ad", "m1", "m2"} {
		add(CmdRegisterUser, &RegisterUser{User: User{UID: uid, Name: uid}})
	}
	add(CmdCreateGroup, &CreateGroup{GroupID: "g1", Name: "team", Members: []MemberSpec{
		{UID: "o", Role: RoleOwner}, {UID: "ad", Role: RoleAdmin}, {UID: "m1"}, {UID: "m2"}}})
	add(CmdImportFriends, &ImportFriends{OwnerUID: "a", FriendUIDs: []string{"b"}})
	add(CmdDeleteFriend, &DeleteFriend{OwnerUID: "a", UID: "b"})
	add(CmdAddBlacklist, &AddBlacklist{OwnerUID: "a", UID: "b"})
	add(CmdRemoveBlacklist, &RemoveBlacklist{OwnerUID: "a", UID: "b"})
	add(CmdSetGroupInfo, &SetGroupInfo{GroupID: "g1", Introduction: strp("hello")})
	add(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", UID: "m1", Seconds: 60})
	add(CmdCancelMuteGroupMember, &CancelMuteGroupMember{GroupID: "g1", UID: "m1"})
	add(CmdMuteGroupMember, &MuteGroupMember{GroupID: "g1", UID: "m2", Seconds: 60})
	add(CmdSetGroupMemberInfo, &SetGroupMemberInfo{GroupID: "g1", UID: "m1", Role: RoleAdmin})
	add(CmdTransferGroup, &TransferGroup{GroupID: "g1", OldOwnerUID: "o", NewOwnerUID: "m1"})
	add(CmdQuitGroup, &QuitGroup{GroupID: "g1", UID: "o"})
	add(CmdDismissGroup, &DismissGroup{GroupID: "g1"})
	return out
}

func TestRelationCommandsReplayAndRestore(t *testing.T) {
	h := newHarness(t)
	logs := relScript(h)
	want := h.digest()
	wantMembers, _ := h.f.GroupMembers("g1")

	// Replaying the same entries into a fresh FSM gives the same state.
	replay := newHarness(t)
	for _, l := range logs {
		replay.f.Apply(l)
	}
	if got := replay.digest(); got != want {
		t.Fatalf("replay digest %s, want %s", got, want)
	}
	// Replaying them again changes nothing: they are at or below the applied index.
	for _, l := range logs {
		replay.f.Apply(l)
	}
	if got := replay.digest(); got != want {
		t.Fatalf("second replay changed the digest")
	}
	// The state a leader streams restores to the same reads.
	fresh := newHarness(t)
	mustRestore(t, fresh.f, mustState(t, h.f))
	if got := fresh.digest(); got != want {
		t.Fatalf("restored digest %s, want %s", got, want)
	}
	gotMembers, _ := fresh.f.GroupMembers("g1")
	if !reflect.DeepEqual(gotMembers, wantMembers) {
		t.Fatalf("restored members %+v, want %+v", gotMembers, wantMembers)
	}
	g, _ := fresh.f.Group("g1")
	if g.Status != GroupDismissed || g.OwnerUID != "m1" || g.Introduction != "hello" {
		t.Fatalf("restored group %+v", g)
	}
}

func TestKickTellsTheKickedAndTheRest(t *testing.T) {
	h, notices := relHarness(t)
	relGroup(h)
	notices()
	h.mustApply(CmdKickFromGroup, &KickFromGroup{GroupID: "g1", UIDs: []string{"m1", "out"}, Reason: "spam"})
	ns := notices()
	if len(ns) != 1 || ns[0].Type != "kicked" || len(ns[0].UIDs) != 4 ||
		!reflect.DeepEqual(ns[0].Fields["uidList"], []string{"m1"}) {
		t.Fatalf("notices: %+v, want one kicked frame to the 4 members of before", ns)
	}
	h.mustApply(CmdKickFromGroup, &KickFromGroup{GroupID: "g1", UIDs: []string{"out"}})
	if ns := notices(); len(ns) != 0 {
		t.Fatalf("a kick of nobody told %+v", ns)
	}
}
