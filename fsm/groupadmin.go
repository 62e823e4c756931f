package fsm

import "time"

// The group-management commands carry OpUID, the user on whose behalf they act: "" for an
// app administrator, who may do anything, else a member whose role the FSM checks when it
// applies the command (a role checked by the proposer could change before the entry).

// SetGroupInfo changes the group profile fields that are non-nil.
type SetGroupInfo struct {
	GroupID      string
	OpUID        string
	Name         *string
	Introduction *string
	Notification *string
	FaceURL      *string
	Ex           *string
}

// QuitGroup makes UID leave GroupID. The owner must transfer the group first.
type QuitGroup struct {
	GroupID string
	UID     string
}

// TransferGroup makes NewOwnerUID, a member, the owner; OldOwnerUID becomes a member.
type TransferGroup struct {
	GroupID     string
	OpUID       string
	OldOwnerUID string
	NewOwnerUID string
}

// DismissGroup ends a group: no more sends or changes; members keep its history.
type DismissGroup struct {
	GroupID string
	OpUID   string
}

// SetGroupMemberInfo changes a member's role between RoleMember and RoleAdmin (ownership
// moves only with TransferGroup).
type SetGroupMemberInfo struct {
	GroupID string
	OpUID   string
	UID     string
	Role    int32
}

// MuteGroupMember forbids UID to send to GroupID for Seconds from the entry's log time.
type MuteGroupMember struct {
	GroupID string
	OpUID   string
	UID     string
	Seconds int64
}

// CancelMuteGroupMember lets a muted member send again.
type CancelMuteGroupMember struct {
	GroupID string
	OpUID   string
	UID     string
}

// MaxMuteSeconds bounds a mute (a year), so MuteEnd cannot overflow.
const MaxMuteSeconds = 366 * 24 * 3600

// liveGroup returns a group that exists and is not dismissed.
func (w *txn) liveGroup(groupID string) (Group, error) {
	g, err := w.mustGroup(groupID)
	if err != nil {
		return g, err
	}
	if g.Status == GroupDismissed {
		return g, ErrGroupDismissed
	}
	return g, nil
}

// opRole returns the role of the acting user in the group: RoleOwner for an app
// administrator (OpUID ""), ErrNoGroupPermission for a non-member.
func (w *txn) opRole(groupID, opUID string) (int32, error) {
	if opUID == "" {
		return RoleOwner, nil
	}
	m, ok, err := w.getMember(groupID, opUID)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrNoGroupPermission
	}
	return m.Role, nil
}

// mayManage reports whether role may change the group's profile and mute members.
func mayManage(role int32) bool { return role == RoleOwner || role == RoleAdmin }

func (w *txn) setGroupInfo(c *SetGroupInfo) (*Result, error) {
	g, err := w.liveGroup(c.GroupID)
	if err != nil {
		return nil, err
	}
	role, err := w.opRole(g.GroupID, c.OpUID)
	if err != nil {
		return nil, err
	}
	if !mayManage(role) {
		return nil, ErrNoGroupPermission
	}
	if c.Name != nil && *c.Name == "" {
		return nil, ErrInvalidArgument
	}
	changed := map[string]any{"groupID": g.GroupID}
	set := func(dst *string, v *string, field string) {
		if v != nil {
			*dst = *v
			changed[field] = *v
		}
	}
	set(&g.Name, c.Name, "groupName")
	set(&g.Introduction, c.Introduction, "introduction")
	set(&g.Notification, c.Notification, "notification")
	set(&g.FaceURL, c.FaceURL, "faceUrl")
	set(&g.Ex, c.Ex, "ex")
	if err := put(w.groups, []byte(g.GroupID), &g); err != nil {
		return nil, err
	}
	w.notify(Notice{Type: "group_info_changed", UIDs: w.memberUIDs(g.GroupID), Fields: changed})
	return &Result{GroupID: g.GroupID}, nil
}

func (w *txn) quitGroup(c *QuitGroup) (*Result, error) {
	g, err := w.mustGroup(c.GroupID)
	if err != nil {
		return nil, err
	}
	if !validID(c.UID) {
		return nil, ErrInvalidArgument
	}
	if !w.userExists(c.UID) {
		return nil, ErrUserNotFound
	}
	if !has(w.members, pairKey(g.GroupID, c.UID)) {
		return nil, ErrNotGroupMember
	}
	// A dismissed group has no one to hand over to: its owner may just leave.
	if g.OwnerUID == c.UID && g.Status != GroupDismissed {
		return nil, ErrOwnerMustTransfer
	}
	told := w.memberUIDs(g.GroupID)
	if err := w.removeMember(g.GroupID, c.UID); err != nil {
		return nil, err
	}
	g.MemberCount--
	if g.OwnerUID == c.UID {
		g.OwnerUID = ""
	}
	if err := put(w.groups, []byte(g.GroupID), &g); err != nil {
		return nil, err
	}
	w.notify(Notice{Type: "group_quit", UIDs: told, Fields: map[string]any{"groupID": g.GroupID, "uid": c.UID}})
	return &Result{GroupID: g.GroupID}, nil
}

func (w *txn) transferGroup(c *TransferGroup) (*Result, error) {
	g, err := w.liveGroup(c.GroupID)
	if err != nil {
		return nil, err
	}
	if !validID(c.OldOwnerUID) || !validID(c.NewOwnerUID) {
		return nil, ErrInvalidArgument
	}
	if c.OpUID != "" && c.OpUID != g.OwnerUID {
		return nil, ErrNoGroupPermission
	}
	if c.OldOwnerUID != g.OwnerUID {
		return nil, ErrNotGroupOwner
	}
	if c.NewOwnerUID == c.OldOwnerUID {
		return nil, ErrSelf
	}
	if !w.userExists(c.NewOwnerUID) {
		return nil, ErrUserNotFound
	}
	nm, ok, err := w.getMember(g.GroupID, c.NewOwnerUID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotGroupMember
	}
	om, _, err := w.getMember(g.GroupID, c.OldOwnerUID)
	if err != nil {
		return nil, err
	}
	om.Role = RoleMember
	nm.Role, nm.MuteEnd = RoleOwner, 0
	if err := put(w.members, pairKey(g.GroupID, c.OldOwnerUID), &om); err != nil {
		return nil, err
	}
	if err := put(w.members, pairKey(g.GroupID, c.NewOwnerUID), &nm); err != nil {
		return nil, err
	}
	g.OwnerUID = c.NewOwnerUID
	if err := put(w.groups, []byte(g.GroupID), &g); err != nil {
		return nil, err
	}
	w.notify(Notice{Type: "group_owner_changed", UIDs: w.memberUIDs(g.GroupID), Fields: map[string]any{
		"groupID": g.GroupID, "oldOwnerUid": c.OldOwnerUID, "newOwnerUid": c.NewOwnerUID}})
	return &Result{GroupID: g.GroupID}, nil
}

func (w *txn) dismissGroup(c *DismissGroup) (*Result, error) {
	g, err := w.liveGroup(c.GroupID)
	if err != nil {
		return nil, err
	}
	if c.OpUID != "" && c.OpUID != g.OwnerUID {
		return nil, ErrNoGroupPermission
	}
	g.Status = GroupDismissed
	if err := put(w.groups, []byte(g.GroupID), &g); err != nil {
		return nil, err
	}
	w.notify(Notice{Type: "group_dismissed", UIDs: w.memberUIDs(g.GroupID), Fields: map[string]any{"groupID": g.GroupID}})
	return &Result{GroupID: g.GroupID}, nil
}

// targetMember checks the common rules of acting on a member: the group is live, the
// actor may manage it, the target is a registered user, a member and not the owner, and a
// group admin acts only on ordinary members: never on an admin, themselves included (a
// muted admin must not lift the owner's mute).
func (w *txn) targetMember(groupID, opUID, uid string) (Group, memberRec, error) {
	g, err := w.liveGroup(groupID)
	if err != nil {
		return g, memberRec{}, err
	}
	if !validID(uid) {
		return g, memberRec{}, ErrInvalidArgument
	}
	role, err := w.opRole(g.GroupID, opUID)
	if err != nil {
		return g, memberRec{}, err
	}
	if !mayManage(role) {
		return g, memberRec{}, ErrNoGroupPermission
	}
	if !w.userExists(uid) {
		return g, memberRec{}, ErrUserNotFound
	}
	m, ok, err := w.getMember(g.GroupID, uid)
	if err != nil {
		return g, m, err
	}
	if !ok {
		return g, m, ErrNotGroupMember
	}
	if m.Role == RoleOwner {
		return g, m, ErrOwnerUntouchable
	}
	if role == RoleAdmin && m.Role == RoleAdmin {
		return g, m, ErrNoGroupPermission
	}
	return g, m, nil
}

func (w *txn) setGroupMemberInfo(c *SetGroupMemberInfo) (*Result, error) {
	if c.Role != RoleMember && c.Role != RoleAdmin {
		return nil, ErrInvalidArgument
	}
	g, m, err := w.targetMember(c.GroupID, c.OpUID, c.UID)
	if err != nil {
		return nil, err
	}
	// Only the owner hands out or takes back the admin role.
	if role, _ := w.opRole(g.GroupID, c.OpUID); role != RoleOwner {
		return nil, ErrNoGroupPermission
	}
	m.Role = c.Role
	if err := put(w.members, pairKey(g.GroupID, c.UID), &m); err != nil {
		return nil, err
	}
	w.notify(Notice{Type: "group_member_info_changed", UIDs: w.memberUIDs(g.GroupID), Fields: map[string]any{
		"groupID": g.GroupID, "uid": c.UID, "roleLevel": c.Role}})
	return &Result{GroupID: g.GroupID}, nil
}

func (w *txn) muteGroupMember(c *MuteGroupMember) (*Result, error) {
	if c.Seconds <= 0 || c.Seconds > MaxMuteSeconds {
		return nil, ErrInvalidArgument
	}
	g, m, err := w.targetMember(c.GroupID, c.OpUID, c.UID)
	if err != nil {
		return nil, err
	}
	m.MuteEnd = w.now + c.Seconds*int64(time.Second)
	if err := put(w.members, pairKey(g.GroupID, c.UID), &m); err != nil {
		return nil, err
	}
	w.notify(Notice{Type: "group_member_muted", UIDs: w.memberUIDs(g.GroupID), Fields: map[string]any{
		"groupID": g.GroupID, "uid": c.UID, "muteEndTime": m.MuteEnd}})
	return &Result{GroupID: g.GroupID}, nil
}

func (w *txn) cancelMuteGroupMember(c *CancelMuteGroupMember) (*Result, error) {
	g, m, err := w.targetMember(c.GroupID, c.OpUID, c.UID)
	if err != nil {
		return nil, err
	}
	if m.MuteEnd == 0 {
		return &Result{GroupID: g.GroupID}, nil
	}
	m.MuteEnd = 0
	if err := put(w.members, pairKey(g.GroupID, c.UID), &m); err != nil {
		return nil, err
	}
	w.notify(Notice{Type: "group_member_unmuted", UIDs: w.memberUIDs(g.GroupID), Fields: map[string]any{
		"groupID": g.GroupID, "uid": c.UID}})
	return &Result{GroupID: g.GroupID}, nil
}

// Groups returns the groups of ids in order, or ErrGroupNotFound naming the first unknown.
func (f *FSM) Groups(ids []string) ([]Group, error) {
	out := make([]Group, 0, len(ids))
	err := f.view(func(r *txn) error {
		for _, id := range ids {
			g, ok, err := r.getGroup(id)
			if err != nil {
				return err
			}
			if !ok {
				return &NotFoundError{ID: id, Err: ErrGroupNotFound}
			}
			out = append(out, g)
		}
		return nil
	})
	return out, err
}

// NotFoundError names the id a lookup did not find; it unwraps to its sentinel.
type NotFoundError struct {
	ID  string
	Err error
}

func (e *NotFoundError) Error() string { return e.Err.Error() + ": " + e.ID }
func (e *NotFoundError) Unwrap() error { return e.Err }
