package fsm

import "bytes"

func (w *txn) createGroup(c *CreateGroup) (*Result, error) {
	if !validID(c.GroupID) || c.Name == "" || len(c.Members) == 0 {
		return nil, ErrInvalidArgument
	}
	owner := ""
	seen := make(map[string]bool, len(c.Members))
	for _, m := range c.Members {
		if !validID(m.UID) || seen[m.UID] {
			return nil, ErrInvalidArgument
		}
		seen[m.UID] = true
		switch m.Role {
		case RoleOwner:
			if owner != "" {
				return nil, ErrInvalidArgument
			}
			owner = m.UID
		case RoleMember, RoleAdmin:
		default:
			return nil, ErrInvalidArgument
		}
	}
	if owner == "" {
		return nil, ErrInvalidArgument
	}
	// The proposer generates GroupID; a collision is its bug, not a reason to merge groups.
	if has(w.groups, []byte(c.GroupID)) {
		return nil, ErrInvalidArgument
	}
	for _, m := range c.Members {
		if !w.userExists(m.UID) {
			return nil, ErrUserNotFound
		}
	}
	g := Group{
		GroupID:      c.GroupID,
		Name:         c.Name,
		Introduction: c.Introduction,
		Notification: c.Notification,
		FaceURL:      c.FaceURL,
		OwnerUID:     owner,
		CreateTime:   w.now,
		MemberCount:  len(c.Members),
	}
	if err := put(w.groups, []byte(g.GroupID), &g); err != nil {
		return nil, err
	}
	for _, m := range c.Members {
		if err := w.putMember(g.GroupID, m.UID, m.Role); err != nil {
			return nil, err
		}
	}
	return &Result{GroupID: g.GroupID}, nil
}

func (w *txn) putMember(groupID, uid string, role int32) error {
	if err := put(w.members, pairKey(groupID, uid), &memberRec{Role: role, JoinTime: w.now}); err != nil {
		return err
	}
	return put(w.userGroups, pairKey(uid, groupID), w.now)
}

func (w *txn) mustGroup(groupID string) (Group, error) {
	if !validID(groupID) {
		return Group{}, ErrInvalidArgument
	}
	g, ok, err := w.getGroup(groupID)
	if err != nil {
		return g, err
	}
	if !ok {
		return g, ErrGroupNotFound
	}
	return g, nil
}

// inviteToGroup adds each uid as an ordinary member: 0 added, -1 unknown or already a
// member (a uid listed twice is already a member the second time). A dismissed group
// takes nobody.
func (w *txn) inviteToGroup(c *InviteToGroup) (*Result, error) {
	g, err := w.liveGroup(c.GroupID)
	if err != nil {
		return nil, err
	}
	r := &Result{GroupID: g.GroupID}
	for _, uid := range c.UIDs {
		res := int32(-1)
		if w.userExists(uid) && !has(w.members, pairKey(g.GroupID, uid)) {
			if err := w.putMember(g.GroupID, uid, RoleMember); err != nil {
				return nil, err
			}
			g.MemberCount++
			res = 0
		}
		r.Results = append(r.Results, UIDResult{UID: uid, Result: res})
	}
	return r, put(w.groups, []byte(g.GroupID), &g)
}

// kickFromGroup removes each uid: 0 removed, -1 not a member, unknown, or the owner. A
// dismissed group keeps its members (they read its history); they may quit it.
func (w *txn) kickFromGroup(c *KickFromGroup) (*Result, error) {
	g, err := w.liveGroup(c.GroupID)
	if err != nil {
		return nil, err
	}
	r := &Result{GroupID: g.GroupID}
	told := w.memberUIDs(g.GroupID)
	var kicked []string
	for _, uid := range c.UIDs {
		res := int32(-1)
		if uid != g.OwnerUID && validID(uid) && has(w.members, pairKey(g.GroupID, uid)) {
			if err := w.removeMember(g.GroupID, uid); err != nil {
				return nil, err
			}
			g.MemberCount--
			res = 0
			kicked = append(kicked, uid)
		}
		r.Results = append(r.Results, UIDResult{UID: uid, Result: res})
	}
	if err := put(w.groups, []byte(g.GroupID), &g); err != nil {
		return nil, err
	}
	if len(kicked) > 0 {
		// The kicked users learn it too: they are no longer members once this commits.
		w.notify(Notice{Type: "kicked", UIDs: told, Fields: map[string]any{
			"groupID": g.GroupID, "uidList": kicked, "reason": c.Reason}})
	}
	return r, nil
}

func (w *txn) removeMember(groupID, uid string) error {
	if err := w.members.Delete(pairKey(groupID, uid)); err != nil {
		return err
	}
	return w.userGroups.Delete(pairKey(uid, groupID))
}

// leaveGroup removes a deleted user from a group, handing ownership on if they owned it.
func (w *txn) leaveGroup(groupID, uid string) error {
	g, ok, err := w.getGroup(groupID)
	if err != nil {
		return err
	}
	if err := w.removeMember(groupID, uid); err != nil {
		return err
	}
	if !ok {
		return nil
	}
	g.MemberCount--
	if g.OwnerUID == uid {
		g.OwnerUID = ""
		heir, err := w.heir(groupID)
		if err != nil {
			return err
		}
		if heir != "" {
			m, _, err := w.getMember(groupID, heir)
			if err != nil {
				return err
			}
			// An owner is never muted (nobody could lift it: the owner is untouchable),
			// as in transferGroup.
			m.Role, m.MuteEnd = RoleOwner, 0
			if err := put(w.members, pairKey(groupID, heir), &m); err != nil {
				return err
			}
			g.OwnerUID = heir
		}
	}
	return put(w.groups, []byte(groupID), &g)
}

// heir picks the next owner deterministically: the first admin by uid, else the first
// member by uid, else "".
func (w *txn) heir(groupID string) (string, error) {
	first := ""
	p := prefixKey(groupID)
	c := w.members.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		var m memberRec
		if err := DecodeValue(v, &m); err != nil {
			return "", err
		}
		uid := string(k[len(p):])
		if m.Role == RoleAdmin {
			return uid, nil
		}
		if first == "" {
			first = uid
		}
	}
	return first, nil
}

// Group returns a group or ErrGroupNotFound.
func (f *FSM) Group(groupID string) (Group, error) {
	var g Group
	err := f.view(func(r *txn) error {
		var ok bool
		var err error
		g, ok, err = r.getGroup(groupID)
		if err == nil && !ok {
			err = ErrGroupNotFound
		}
		return err
	})
	return g, err
}

// GroupMembers returns a group's members sorted by uid, or ErrGroupNotFound.
func (f *FSM) GroupMembers(groupID string) ([]GroupMember, error) {
	var out []GroupMember
	err := f.view(func(r *txn) error {
		if !validID(groupID) || !has(r.groups, []byte(groupID)) {
			return ErrGroupNotFound
		}
		p := prefixKey(groupID)
		c := r.members.Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			var m memberRec
			if err := DecodeValue(v, &m); err != nil {
				return err
			}
			out = append(out, GroupMember{GroupID: groupID, UID: string(k[len(p):]), Role: m.Role, JoinTime: m.JoinTime, MuteEnd: m.MuteEnd})
		}
		return nil
	})
	return out, err
}

// IsGroupMember reports whether uid is a member of groupID.
func (f *FSM) IsGroupMember(groupID, uid string) (bool, error) {
	var ok bool
	err := f.view(func(r *txn) error {
		ok = validID(groupID) && validID(uid) && has(r.members, pairKey(groupID, uid))
		return nil
	})
	return ok, err
}

// JoinedGroups returns the groups uid belongs to, sorted by groupID.
func (f *FSM) JoinedGroups(uid string) ([]Group, error) {
	var out []Group
	if !validID(uid) {
		return nil, nil
	}
	err := f.view(func(r *txn) error {
		for _, groupID := range suffixes(r.userGroups, uid) {
			g, ok, err := r.getGroup(groupID)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, g)
			}
		}
		return nil
	})
	return out, err
}
