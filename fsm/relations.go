package fsm

import "bytes"

// DeleteFriend ends the mutual friendship of OwnerUID and UID (both directions).
type DeleteFriend struct {
	OwnerUID string
	UID      string
}

// RemoveBlacklist makes OwnerUID stop blocking UID.
type RemoveBlacklist struct {
	OwnerUID string
	UID      string
}

// FriendInfo is one uid of a friends-info lookup: whether it is the owner's friend, since
// when, and the friend's profile when it is one.
type FriendInfo struct {
	UID        string
	IsFriend   bool
	CreateTime int64
	User       User
}

func (w *txn) deleteFriend(c *DeleteFriend) (*Result, error) {
	if !validID(c.OwnerUID) || !validID(c.UID) {
		return nil, ErrInvalidArgument
	}
	if c.OwnerUID == c.UID {
		return nil, ErrSelf
	}
	if !w.userExists(c.OwnerUID) || !w.userExists(c.UID) {
		return nil, ErrUserNotFound
	}
	if !has(w.friends, pairKey(c.OwnerUID, c.UID)) && !has(w.friends, pairKey(c.UID, c.OwnerUID)) {
		return nil, ErrNotFriend
	}
	for _, k := range [][]byte{pairKey(c.OwnerUID, c.UID), pairKey(c.UID, c.OwnerUID)} {
		if err := w.friends.Delete(k); err != nil {
			return nil, err
		}
	}
	w.notify(Notice{Type: "friend_deleted", UIDs: []string{c.OwnerUID, c.UID},
		Fields: map[string]any{"ownerUid": c.OwnerUID, "uid": c.UID}})
	return &Result{}, nil
}

func (w *txn) removeBlacklist(c *RemoveBlacklist) (*Result, error) {
	if !validID(c.OwnerUID) || !validID(c.UID) {
		return nil, ErrInvalidArgument
	}
	if c.OwnerUID == c.UID {
		return nil, ErrSelf
	}
	if !w.userExists(c.OwnerUID) || !w.userExists(c.UID) {
		return nil, ErrUserNotFound
	}
	if !has(w.blacklist, pairKey(c.OwnerUID, c.UID)) {
		return nil, ErrNotInBlacklist
	}
	if err := w.blacklist.Delete(pairKey(c.OwnerUID, c.UID)); err != nil {
		return nil, err
	}
	if err := w.blockedBy.Delete(pairKey(c.UID, c.OwnerUID)); err != nil {
		return nil, err
	}
	return &Result{}, nil
}

// IsFriend reports whether uid is owner's friend.
func (f *FSM) IsFriend(owner, uid string) (bool, error) {
	var ok bool
	err := f.view(func(r *txn) error {
		ok = validID(owner) && validID(uid) && has(r.friends, pairKey(owner, uid))
		return nil
	})
	return ok, err
}

// FriendsInfo answers, for each uid in order, whether it is owner's friend and, if it is,
// since when and its profile.
func (f *FSM) FriendsInfo(owner string, uids []string) ([]FriendInfo, error) {
	out := make([]FriendInfo, 0, len(uids))
	err := f.view(func(r *txn) error {
		for _, uid := range uids {
			fi := FriendInfo{UID: uid}
			if validID(owner) && validID(uid) {
				var since int64
				ok, err := get(r.friends, pairKey(owner, uid), &since)
				if err != nil {
					return err
				}
				if ok {
					u, found, err := r.getUser(uid)
					if err != nil {
						return err
					}
					fi.IsFriend, fi.CreateTime = found, since
					if found {
						fi.User = u
					}
				}
			}
			out = append(out, fi)
		}
		return nil
	})
	return out, err
}

// memberUIDs lists a group's members by uid, for notices.
func (w *txn) memberUIDs(groupID string) []string {
	var out []string
	p := prefixKey(groupID)
	c := w.members.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[len(p):]))
	}
	return out
}
