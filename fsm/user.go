package fsm

func (w *txn) registerUser(c *RegisterUser) (*Result, error) {
	u := c.User
	if !validID(u.UID) {
		return nil, ErrInvalidArgument
	}
	if has(w.users, []byte(u.UID)) {
		return nil, ErrUserExists
	}
	// RegIndex is what tokens carry: a uid registered again gets a new one, so tokens of
	// the deleted user stop working.
	u.RegIndex = w.id
	u.CreateTime = w.now
	if err := put(w.users, []byte(u.UID), &u); err != nil {
		return nil, err
	}
	return &Result{UID: u.UID, RegIndex: u.RegIndex}, nil
}

func (w *txn) updateUser(c *UpdateUser) (*Result, error) {
	u, ok, err := w.getUser(c.UID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrUserNotFound
	}
	setString := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	setString(&u.Name, c.Name)
	setString(&u.Icon, c.Icon)
	setString(&u.Mobile, c.Mobile)
	setString(&u.Birth, c.Birth)
	setString(&u.Email, c.Email)
	setString(&u.Ex, c.Ex)
	if c.Gender != nil {
		u.Gender = *c.Gender
	}
	if err := put(w.users, []byte(u.UID), &u); err != nil {
		return nil, err
	}
	return &Result{UID: u.UID}, nil
}

// deleteUsers never fails as a whole: uids that do not exist (or appear twice) are reported
// in Failed and the others are deleted.
func (w *txn) deleteUsers(c *DeleteUsers) (*Result, error) {
	r := &Result{}
	for _, uid := range c.UIDs {
		if !w.userExists(uid) {
			r.Failed = append(r.Failed, uid)
			continue
		}
		if err := w.deleteUser(uid); err != nil {
			return nil, err
		}
		w.eff.deleted = append(w.eff.deleted, uid)
	}
	return r, nil
}

// deleteUser removes a user and every relation that names them. Messages stay: they are
// the other side's history too. A group whose owner is deleted passes to its first admin
// (by uid), else its first member; a group left empty keeps its profile and history with
// no owner.
func (w *txn) deleteUser(uid string) error {
	for _, friend := range suffixes(w.friends, uid) {
		if err := w.friends.Delete(pairKey(uid, friend)); err != nil {
			return err
		}
		if err := w.friends.Delete(pairKey(friend, uid)); err != nil {
			return err
		}
	}
	for _, blocked := range suffixes(w.blacklist, uid) {
		if err := w.blacklist.Delete(pairKey(uid, blocked)); err != nil {
			return err
		}
		if err := w.blockedBy.Delete(pairKey(blocked, uid)); err != nil {
			return err
		}
	}
	for _, owner := range suffixes(w.blockedBy, uid) {
		if err := w.blockedBy.Delete(pairKey(uid, owner)); err != nil {
			return err
		}
		if err := w.blacklist.Delete(pairKey(owner, uid)); err != nil {
			return err
		}
	}
	for _, groupID := range suffixes(w.userGroups, uid) {
		if err := w.leaveGroup(groupID, uid); err != nil {
			return err
		}
	}
	for _, conv := range suffixes(w.userConvs, uid) {
		if err := w.userConvs.Delete(pairKey(uid, conv)); err != nil {
			return err
		}
	}
	if err := w.deleteUserConvState(uid); err != nil {
		return err
	}
	return w.users.Delete([]byte(uid))
}

// User returns one user.
func (f *FSM) User(uid string) (User, bool, error) {
	var (
		u  User
		ok bool
	)
	err := f.view(func(r *txn) error {
		var err error
		u, ok, err = r.getUser(uid)
		return err
	})
	return u, ok, err
}

// Users returns the users that exist among uids, in request order.
func (f *FSM) Users(uids []string) ([]User, error) {
	var out []User
	err := f.view(func(r *txn) error {
		for _, uid := range uids {
			u, ok, err := r.getUser(uid)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, u)
			}
		}
		return nil
	})
	return out, err
}

// AllUIDs returns every registered uid, sorted.
func (f *FSM) AllUIDs() ([]string, error) {
	var out []string
	err := f.view(func(r *txn) error {
		return r.users.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}
