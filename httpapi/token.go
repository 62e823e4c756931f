package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
)

// Identity is whom a verified token speaks for.
type Identity struct {
	UID      string
	Platform int
	// Admin is true when UID is in the configured appManagerUid.
	Admin bool
}

// tokenClaims are the JWT claims imnode issues. RV is the user's registration index
// (fsm.User.RegIndex; 0 for an administrator that is not registered): a token is valid
// only while that registration is, so deleting a user kills its tokens for good.
type tokenClaims struct {
	UID      string `json:"uid"`
	Platform int    `json:"platform"`
	RV       uint64 `json:"rv"`
	jwt.RegisteredClaims
}

// mintToken signs a token for uid valid cfg.TokenPolicy.AccessExpire days and returns it
// with its expiry in Unix seconds.
func (s *Server) mintToken(uid string, platform int, rv uint64) (string, int64, error) {
	now := time.Now()
	exp := now.Add(time.Duration(s.cfg.TokenPolicy.AccessExpire) * 24 * time.Hour)
	c := tokenClaims{UID: uid, Platform: platform, RV: rv, RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.jwtKey)
	if err != nil {
		return "", 0, fmt.Errorf("sign token: %w", err)
	}
	return tok, exp.Unix(), nil
}

// VerifyToken checks a token the way every authenticated route does: signature, expiry,
// and that the user it was issued to is still registered (the same registration). It
// waits for a read barrier when the token is newer than this node's state, so a token
// minted on another node right after registration works. Failures are *Error values with
// the envelope code (1501, 1502, 1503, 1507, or 1801 when the barrier failed). Other
// packages (the WebSocket gateway) use it to authenticate their clients.
func (s *Server) VerifyToken(token string) (Identity, error) {
	return s.verify(nil, token)
}

// verify is VerifyToken for a request: a barrier it passes counts for the whole request.
func (s *Server) verify(r *request, token string) (Identity, error) {
	if token == "" {
		return Identity{}, &Error{Code: CodeTokenNotExist, Msg: "header token is missing"}
	}
	c, ok := s.tokens.get(token)
	if !ok {
		_, err := s.jwtParser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.jwtKey, nil })
		switch {
		case err == nil:
		case errors.Is(err, jwt.ErrTokenMalformed):
			return Identity{}, &Error{Code: CodeTokenMalformed, Msg: "token is malformed"}
		case errors.Is(err, jwt.ErrTokenExpired):
			return Identity{}, &Error{Code: CodeTokenExpired, Msg: "token has expired: get a new one from auth/user_token"}
		default:
			return Identity{}, &Error{Code: CodeTokenInvalid, Msg: "token is invalid (bad signature or claims)"}
		}
		if c.UID == "" {
			return Identity{}, &Error{Code: CodeTokenInvalid, Msg: "token has no uid"}
		}
		s.tokens.put(token, c)
	}
	f := s.b.FSM()
	if c.RV > f.AppliedIndex() {
		// Issued after a registration this node has not applied yet.
		if r != nil {
			if !r.consistent {
				if err := s.consistentRead(); err != nil {
					return Identity{}, err
				}
				r.consistent = true
			}
		} else if err := s.consistentRead(); err != nil {
			return Identity{}, err
		}
	}
	admin := s.admins[c.UID]
	regIndex, ok, err := f.UserRegIndex(c.UID)
	if err != nil {
		return Identity{}, fmt.Errorf("token user lookup: %w", err)
	}
	if !(ok && regIndex == c.RV) && !(c.RV == 0 && admin) {
		return Identity{}, &Error{Code: CodeTokenNotExist, Msg: fmt.Sprintf("the user %q this token was issued to no longer exists", c.UID)}
	}
	return Identity{UID: c.UID, Platform: c.Platform, Admin: admin}, nil
}

// secretOK compares the auth/* secret in constant time.
func (s *Server) secretOK(secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], s.secretSum[:]) == 1
}

// clusterKeyOK compares the X-Cluster-Key header in constant time.
func (s *Server) clusterKeyOK(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	sum := sha256.Sum256(key)
	return subtle.ConstantTimeCompare(sum[:], s.clusterKeySum[:]) == 1
}

// peerCertified reports whether the request came over TLS with a client certificate that
// verified against the cluster's CA.
func peerCertified(ctx *fasthttp.RequestCtx) bool {
	if !ctx.IsTLS() {
		return false
	}
	st := ctx.TLSConnectionState()
	return st != nil && len(st.VerifiedChains) > 0
}

// tokenCache remembers tokens whose signature and claims have been checked, so a client
// that sends the same token on every request pays for HMAC and JSON once. Only the
// cryptographic part is cached: expiry is checked again on every hit, and the user check
// (deleted, registered again) always runs. The map is dropped whole when full, which
// bounds memory without any per-entry bookkeeping.
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]tokenClaims
}

const tokenCacheMax = 65536

func (tc *tokenCache) get(token string) (tokenClaims, bool) {
	tc.mu.RLock()
	c, ok := tc.m[token]
	tc.mu.RUnlock()
	if !ok || c.ExpiresAt == nil || !time.Now().Before(c.ExpiresAt.Time) {
		return tokenClaims{}, false
	}
	return c, true
}

func (tc *tokenCache) put(token string, c tokenClaims) {
	tc.mu.Lock()
	if tc.m == nil || len(tc.m) >= tokenCacheMax {
		tc.m = make(map[string]tokenClaims)
	}
	tc.m[token] = c
	tc.mu.Unlock()
}
