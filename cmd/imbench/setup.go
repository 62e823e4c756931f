package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imnode/imnode/apiclient"
)

// Error codes the setup tolerates or reports (DESIGN.md §3).
const (
	codeOK                = 0
	codeRegisteredAlready = 1102
)

// groupSizes are the groups setup creates (those not larger than -users).
var groupSizes = []int{10, 100, 1000}

// conv is one single-chat conversation of the fixture.
type conv struct {
	a, b string // the two users; a sends on even turns
	id   string // si_<min>_<max>
}

// benchGroup is one group of the fixture; members[0] is the owner.
type benchGroup struct {
	id      string
	members []string
}

// fixture is the data set the workloads run over. Names are derived from -prefix, -users
// and -convs, so a re-run finds what an earlier run created; only group IDs are generated
// by the server, and they are kept in the marker user's ex field.
type fixture struct {
	runID  string // unique per process, the operationID prefix
	users  []string
	convs  []conv
	groups map[int]*benchGroup // by size
	group  *benchGroup         // the -group-size one, nil if absent
	text   string              // the message text, -msg-bytes long
}

func userID(prefix string, i int) string { return fmt.Sprintf("%s_u%05d", prefix, i) }

func markerID(o *options) string {
	return fmt.Sprintf("%s_setup_v1_u%d_c%d", o.prefix, o.users, o.convs)
}

// convPair returns the users of conversation k: user a talks with a+d, where d grows by
// one every -users conversations, so the pairs stay distinct while d < users/2.
func convPair(k, users int) (int, int) {
	a := k % users
	return a, (a + 1 + k/users) % users
}

// maxConvs is how many distinct conversations convPair yields for users.
func maxConvs(users int) int { return users * ((users - 1) / 2) }

func convID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "si_" + a + "_" + b
}

// newFixture derives the users and conversations of o; groups are filled in by setup.
func newFixture(o *options) *fixture {
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	f := &fixture{runID: "imb" + hex.EncodeToString(rb[:]), groups: map[int]*benchGroup{}}
	f.users = make([]string, o.users)
	for i := range f.users {
		f.users[i] = userID(o.prefix, i)
	}
	f.convs = make([]conv, o.convs)
	for k := range f.convs {
		a, b := convPair(k, o.users)
		f.convs[k] = conv{a: f.users[a], b: f.users[b], id: convID(f.users[a], f.users[b])}
	}
	f.text = messageText(o.msgBytes)
	return f
}

// messageText returns n bytes of printable ASCII that needs no JSON escaping.
func messageText(n int) string {
	const alphabet = "imnode load generator text message 0123456789 "
	var b strings.Builder
	b.Grow(n)
	for b.Len() < n {
		b.WriteString(alphabet[:min(len(alphabet), n-b.Len())])
	}
	return b.String()
}

// setupClient wraps apiclient clients of all nodes, used round robin.
type setupClient struct {
	clients []*apiclient.Client
	next    atomic.Uint64
	secret  string
}

func (s *setupClient) pick() *apiclient.Client {
	return s.clients[s.next.Add(1)%uint64(len(s.clients))]
}

// post sends body to route and returns the response when errCode is one of ok.
func (s *setupClient) post(route string, body any, ok ...int) (*apiclient.Response, error) {
	r, err := s.pick().Post(route, body)
	if err != nil {
		return nil, err
	}
	for _, c := range append(ok, codeOK) {
		if r.ErrCode == c {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%s: errCode %d (HTTP %d) %s", route, r.ErrCode, r.HTTPStatus, r.ErrMsg)
}

// adminToken registers the admin (1102 on every later run) and returns its token.
func adminToken(o *options) (string, error) {
	secret, admin := o.secret, o.admin
	var errs []error
	for _, n := range o.nodes {
		c := o.client(n)
		c.Timeout = o.timeout
		r, err := c.Post("auth/user_register", map[string]any{"secret": secret, "platform": 1, "uid": admin, "name": admin})
		if err == nil && r.ErrCode != codeOK && r.ErrCode != codeRegisteredAlready {
			err = fmt.Errorf("register admin %s: errCode %d %s", admin, r.ErrCode, r.ErrMsg)
		}
		if err == nil {
			var tok string
			if tok, err = c.TokenFor(secret, admin); err == nil {
				return tok, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", n, err))
	}
	return "", fmt.Errorf("admin token: %w", errors.Join(errs...))
}

// markerEx is what the marker user's ex field records.
type markerEx struct {
	Groups map[string]string `json:"groups"` // size → groupID
}

// readMarker returns the group IDs recorded by an earlier setup, or nil if there was none.
func (s *setupClient) readMarker(o *options) (map[int]string, error) {
	r, err := s.post("user/get_user_info", map[string]any{"operationID": opID(), "uidList": []string{markerID(o)}}, 1101, 1004)
	if err != nil {
		return nil, err
	}
	var body struct {
		Data []struct {
			UID string `json:"uid"`
			Ex  string `json:"ex"`
		} `json:"data"`
	}
	if err := r.Decode(&body); err != nil {
		return nil, fmt.Errorf("get_user_info: %w", err)
	}
	for _, u := range body.Data {
		if u.UID != markerID(o) {
			continue
		}
		var ex markerEx
		if err := json.Unmarshal([]byte(u.Ex), &ex); err != nil {
			return nil, nil // a marker we cannot read counts as no setup
		}
		out := map[int]string{}
		for k, v := range ex.Groups {
			var n int
			if _, err := fmt.Sscan(k, &n); err == nil && v != "" {
				out[n] = v
			}
		}
		return out, nil
	}
	return nil, nil
}

// writeMarker records a finished setup, last, so an interrupted setup is redone.
func (s *setupClient) writeMarker(o *options, groups map[int]*benchGroup) error {
	ex := markerEx{Groups: map[string]string{}}
	for n, g := range groups {
		ex.Groups[fmt.Sprint(n)] = g.id
	}
	b, _ := json.Marshal(ex)
	r, err := s.post("auth/user_register", map[string]any{"secret": s.secret, "platform": 1, "uid": markerID(o), "name": "imbench setup", "ex": string(b)}, codeRegisteredAlready)
	if err != nil {
		return err
	}
	if r.ErrCode == codeRegisteredAlready {
		_, err = s.post("user/update_user_info", map[string]any{"operationID": opID(), "uid": markerID(o), "ex": string(b)})
	}
	return err
}

// setup makes sure the fixture exists on the cluster: users, a friendship per conversation
// and one group per size. With mode "auto" a finished earlier setup (the marker user) is
// reused; "always" redoes it; "never" only reads the marker.
func setup(o *options, f *fixture, token string, log io.Writer) error {
	s := &setupClient{secret: o.secret}
	for _, n := range o.nodes {
		c := o.client(n).WithToken(token)
		c.Timeout = o.timeout
		s.clients = append(s.clients, c)
	}
	ids, err := s.readMarker(o)
	if err != nil {
		return fmt.Errorf("read setup marker: %w", err)
	}
	complete := ids != nil
	for _, n := range groupSizes {
		if n <= o.users && ids[n] == "" {
			complete = false
		}
	}
	if o.setupMode == "never" || (o.setupMode == "auto" && complete) {
		for n, id := range ids {
			if n <= o.users {
				f.groups[n] = &benchGroup{id: id, members: f.users[:n]}
			}
		}
		f.group = f.groups[o.groupSize]
		fmt.Fprintf(log, "setup: reusing %d users, %d conversations, %d groups (marker %s)\n", len(f.users), len(f.convs), len(f.groups), markerID(o))
		return nil
	}
	start := time.Now()
	fmt.Fprintf(log, "setup: registering %d users...\n", len(f.users))
	err = parallel(len(f.users), o.setupConc, func(i int) error {
		_, err := s.post("auth/user_register", map[string]any{"secret": o.secret, "platform": 1, "uid": f.users[i], "name": f.users[i]}, codeRegisteredAlready)
		return err
	})
	if err != nil {
		return fmt.Errorf("register users: %w", err)
	}
	friends := map[string][]string{}
	var owners []string
	for _, c := range f.convs {
		if friends[c.a] == nil {
			owners = append(owners, c.a)
		}
		friends[c.a] = append(friends[c.a], c.b)
	}
	fmt.Fprintf(log, "setup: importing %d friendships...\n", len(f.convs))
	err = parallel(len(owners), o.setupConc, func(i int) error {
		_, err := s.post("friend/import_friend", map[string]any{"operationID": opID(), "ownerUid": owners[i], "uidList": friends[owners[i]]})
		return err
	})
	if err != nil {
		return fmt.Errorf("import friends: %w", err)
	}
	for _, n := range groupSizes {
		if n > o.users {
			continue
		}
		fmt.Fprintf(log, "setup: creating a group of %d...\n", n)
		g, err := s.createGroup(fmt.Sprintf("%s group of %d", o.prefix, n), f.users[:n])
		if err != nil {
			return fmt.Errorf("group of %d: %w", n, err)
		}
		f.groups[n] = g
	}
	f.group = f.groups[o.groupSize]
	if err := s.writeMarker(o, f.groups); err != nil {
		return fmt.Errorf("write setup marker: %w", err)
	}
	fmt.Fprintf(log, "setup: done in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// memberChunk bounds the members sent in one create/invite request, to stay far below
// any body limit.
const memberChunk = 200

func (s *setupClient) createGroup(name string, members []string) (*benchGroup, error) {
	first := members[:min(len(members), memberChunk)]
	list := make([]map[string]any, len(first))
	for i, u := range first {
		role := 0
		if i == 0 {
			role = 1
		}
		list[i] = map[string]any{"uid": u, "setRole": role}
	}
	r, err := s.post("group/create_group", map[string]any{"operationID": opID(), "groupName": name, "memberList": list})
	if err != nil {
		return nil, err
	}
	var d struct {
		GroupID string `json:"groupID"`
	}
	if err := r.DecodeData(&d); err != nil || d.GroupID == "" {
		return nil, fmt.Errorf("create_group answered no groupID: %s", r.Raw)
	}
	for i := len(first); i < len(members); i += memberChunk {
		chunk := members[i:min(len(members), i+memberChunk)]
		if _, err := s.post("group/invite_user_to_group", map[string]any{"operationID": opID(), "groupID": d.GroupID, "uidList": chunk, "reason": "imbench"}); err != nil {
			return nil, err
		}
	}
	return &benchGroup{id: d.GroupID, members: members}, nil
}

// opID returns a random operationID for setup requests.
func opID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "imbsetup-" + hex.EncodeToString(b[:])
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the first error; after
// an error no new calls start.
func parallel(n, workers int, fn func(i int) error) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		failed   atomic.Bool
	)
	for w := 0; w < min(max(workers, 1), n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
