package httpapi

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func signed(t *testing.T, key string, c tokenClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenChecks(t *testing.T) {
	e := newEnv(t, nil)
	e.register("alice")
	u, _, _ := e.b.f.User("alice")
	key := e.cfg.TokenPolicy.AccessSecret
	future := jwt.NewNumericDate(time.Now().Add(time.Hour))
	past := jwt.NewNumericDate(time.Now().Add(-time.Hour))
	body := map[string]any{"uid": "alice"}
	cases := []struct {
		name  string
		token string
		code  int
	}{
		{"missing", "", CodeTokenNotExist},
		{"malformed", "a.b", CodeTokenMalformed},
		{"garbage segments", "xx.yy.zz", CodeTokenMalformed},
		{"bad signature", signed(t, "another key", tokenClaims{UID: "alice", RV: u.RegIndex, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: future}}), CodeTokenInvalid},
		{"no expiry", signed(t, key, tokenClaims{UID: "alice", RV: u.RegIndex}), CodeTokenInvalid},
		{"expired", signed(t, key, tokenClaims{UID: "alice", RV: u.RegIndex, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: past}}), CodeTokenExpired},
		{"wrong registration", signed(t, key, tokenClaims{UID: "alice", RV: u.RegIndex + 100, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: future}}), CodeTokenNotExist},
		{"unknown user", signed(t, key, tokenClaims{UID: "nobody", RV: 1, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: future}}), CodeTokenNotExist},
		{"rv 0 of a non-admin", signed(t, key, tokenClaims{UID: "alice", RV: 0, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: future}}), CodeTokenNotExist},
		{"valid", signed(t, key, tokenClaims{UID: "alice", RV: u.RegIndex, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: future}}), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.with(t).wantCode("msg/newest_seq", c.token, body, c.code)
		})
	}
}

func TestTokenDiesWithItsUser(t *testing.T) {
	e := newEnv(t, nil)
	old := e.register("alice")
	e.ok("msg/newest_seq", old, map[string]any{"uid": "alice"})
	e.ok("manager/delete_user", e.admin, map[string]any{"operationID": "d1", "deleteUidList": []string{"alice"}})
	e.wantCode("msg/newest_seq", old, map[string]any{"uid": "alice"}, CodeTokenNotExist)
	e.wantCode("auth/user_token", "", map[string]any{"secret": "tuoyun", "platform": 1, "uid": "alice"}, CodeUserNotFound)

	// Registered again: the old token stays dead, a new one works.
	fresh := e.register("alice")
	e.wantCode("msg/newest_seq", old, map[string]any{"uid": "alice"}, CodeTokenNotExist)
	e.ok("msg/newest_seq", fresh, map[string]any{"uid": "alice"})
	e.ok("msg/newest_seq", e.token("alice"), map[string]any{"uid": "alice"})
}

func TestAdminTokens(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.cfg.AppManagerUID[1]
	unregistered := e.token(admin) // rv 0: an administrator needs no registration
	e.ok("manager/get_all_users_uid", unregistered, map[string]any{"operationID": "a"})

	registered := e.register(admin)
	e.ok("manager/get_all_users_uid", registered, map[string]any{"operationID": "b"})
	e.ok("manager/get_all_users_uid", unregistered, map[string]any{"operationID": "c"})
	e.ok("manager/get_all_users_uid", e.token(admin), map[string]any{"operationID": "d"})

	e.wantCode("auth/user_register", "", map[string]any{"secret": "tuoyun", "platform": 1, "uid": admin, "name": ""}, CodeRegisteredAlready)
	e.wantCode("auth/user_token", "", map[string]any{"secret": "tuoyun", "platform": 1, "uid": "stranger"}, CodeUserNotFound)
}

// TestTokenFromAnotherNode: a token minted on the leader right after registration works
// on a follower that has not applied the registration yet, because the check waits for a
// read barrier when the token is newer than the local state.
func TestTokenFromAnotherNode(t *testing.T) {
	leader := newEnv(t, nil)
	fb := mustFakeBackend(t)
	fb.leader = leader.b
	follower := newEnvWith(t, fb, nil, nil)

	tok := leader.register("alice")
	if fb.f.AppliedIndex() >= leader.b.f.AppliedIndex() {
		t.Fatalf("follower is not behind: applied %d, leader %d", fb.f.AppliedIndex(), leader.b.f.AppliedIndex())
	}
	reads := fb.reads.Load()
	// Even a stale read waits for the barrier when the token is newer than the state.
	r := follower.do("POST", "/msg/newest_seq", tok, map[string]any{"uid": "alice"}, "X-Consistency", "stale")
	if r.ErrCode != 0 {
		t.Fatalf("fresh token on a follower: got %d %q, want 0", r.ErrCode, r.ErrMsg)
	}
	if fb.reads.Load() != reads+1 {
		t.Fatalf("read barriers: got %d, want 1", fb.reads.Load()-reads)
	}
}

func TestExpiredTimeIsTheTokenExpiry(t *testing.T) {
	e := newEnv(t, nil)
	r := e.ok("auth/user_token", "", map[string]any{"secret": "tuoyun", "platform": 5, "uid": e.cfg.AppManagerUID[0]})
	var d tokenResp
	r.data(t, &d)
	var c tokenClaims
	if _, err := jwt.ParseWithClaims(d.Token, &c, func(*jwt.Token) (any, error) { return []byte(e.cfg.TokenPolicy.AccessSecret), nil }); err != nil {
		t.Fatal(err)
	}
	want := time.Now().Add(time.Duration(e.cfg.TokenPolicy.AccessExpire) * 24 * time.Hour).Unix()
	if d.ExpiredTime != c.ExpiresAt.Unix() || d.ExpiredTime < want-5 || d.ExpiredTime > want+5 {
		t.Fatalf("expiredTime %d, exp %d: want both about %d", d.ExpiredTime, c.ExpiresAt.Unix(), want)
	}
	if c.UID != e.cfg.AppManagerUID[0] || c.Platform != 5 || c.RV != 0 || c.IssuedAt == nil {
		t.Fatalf("claims %+v: want uid, platform 5, rv 0, iat", c)
	}
}
