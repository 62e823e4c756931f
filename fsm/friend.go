package fsm

// importFriends makes the owner and each friend mutual friends. With one friend uid the
// command is all or nothing (ErrSelf, ErrUserNotFound), as the spec's single-uid form
// answers; with several, the uids that cannot be friends go to Failed and the rest apply.
func (w *txn) importFriends(c *ImportFriends) (*Result, error) {
	if !validID(c.OwnerUID) || len(c.FriendUIDs) == 0 {
		return nil, ErrInvalidArgument
	}
	if !w.userExists(c.OwnerUID) {
		return nil, ErrUserNotFound
	}
	if len(c.FriendUIDs) == 1 {
		switch uid := c.FriendUIDs[0]; {
		case uid == c.OwnerUID:
			return nil, ErrSelf
		case !validID(uid):
			return nil, ErrInvalidArgument
		case !w.userExists(uid):
			return nil, ErrUserNotFound
		}
	}
	r := &Result{}
	for _, uid := range c.FriendUIDs {
		if uid == c.OwnerUID || !w.userExists(uid) {
			r.Failed = append(r.Failed, uid)
			continue
		}
		if err := w.befriend(c.OwnerUID, uid); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// befriend stores both directions; an existing friendship keeps its original time, which
// is what makes the import idempotent.
func (w *txn) befriend(a, b string) error {
	for _, k := range [][]byte{pairKey(a, b), pairKey(b, a)} {
		if has(w.friends, k) {
			continue
		}
		if err := put(w.friends, k, w.now); err != nil {
			return err
		}
	}
	return nil
}

func (w *txn) addBlacklist(c *AddBlacklist) (*Result, error) {
	if !validID(c.OwnerUID) || !validID(c.UID) {
		return nil, ErrInvalidArgument
	}
	if c.OwnerUID == c.UID {
		return nil, ErrSelf
	}
	if !w.userExists(c.OwnerUID) || !w.userExists(c.UID) {
		return nil, ErrUserNotFound
	}
	k := pairKey(c.OwnerUID, c.UID)
	if has(w.blacklist, k) {
		return &Result{}, nil
	}
	if err := put(w.blacklist, k, w.now); err != nil {
		return nil, err
	}
	// The reverse index lets deleting a user find who blocked them without a full scan.
	if err := put(w.blockedBy, pairKey(c.UID, c.OwnerUID), w.now); err != nil {
		return nil, err
	}
	return &Result{}, nil
}

// Friends returns owner's friends, sorted.
func (f *FSM) Friends(owner string) ([]string, error) {
	return f.listSuffixes(owner, func(r *txn) []string { return suffixes(r.friends, owner) })
}

// Blacklist returns the uids owner blocked, sorted.
func (f *FSM) Blacklist(owner string) ([]string, error) {
	return f.listSuffixes(owner, func(r *txn) []string { return suffixes(r.blacklist, owner) })
}

func (f *FSM) listSuffixes(id string, fn func(r *txn) []string) ([]string, error) {
	if !validID(id) {
		return nil, nil
	}
	var out []string
	err := f.view(func(r *txn) error {
		out = fn(r)
		return nil
	})
	return out, err
}
