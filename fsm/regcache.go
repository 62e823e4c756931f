package fsm

import "sync"

// regCache remembers the RegIndex of users UserRegIndex has read, so that checking a token
// (every API request) does not open a read transaction and decode the user each time. Only
// users that exist are kept; a commit that deletes users and a Restore clear it. RegIndex
// changes only by deleting a user and registering the uid again, so nothing else can make
// an entry wrong.
//
// A reader that began before such a clear must not put what it read afterwards: it takes
// gen before its transaction and puts only if gen has not moved.
type regCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]uint64
}

// maxRegCache bounds the entries; a full cache starts over.
const maxRegCache = 1 << 16

func (c *regCache) get(uid string) (regIndex, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	regIndex, ok = c.m[uid]
	return regIndex, c.gen, ok
}

func (c *regCache) put(uid string, regIndex, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= maxRegCache {
		c.m = make(map[string]uint64)
	}
	c.m[uid] = regIndex
}

func (c *regCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}

// UserRegIndex returns the RegIndex of user uid, and whether the user exists, as of the
// last commit (like User).
func (f *FSM) UserRegIndex(uid string) (uint64, bool, error) {
	regIndex, gen, ok := f.regs.get(uid)
	if ok {
		return regIndex, true, nil
	}
	u, ok, err := f.User(uid)
	if err != nil || !ok {
		return 0, false, err
	}
	f.regs.put(uid, u.RegIndex, gen)
	return u.RegIndex, true, nil
}
