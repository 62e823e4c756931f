package node

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/imnode/imnode/internal/pki"
)

// Peer authentication on the raft port. Every connection, in both directions, proves that
// both ends hold the cluster key before raft sees a byte of it; with TLS configured the
// connection is first mutual TLS, each side verifying the other's certificate against the
// cluster's CA. The exchange (after TLS, if any):
//
//	dialer   -> listener: "IMRA" | version | purpose | nonce_d (32 bytes)
//	listener -> dialer:   nonce_l (32 bytes) | len | node ID | HMAC(K, "server" | purpose | nonce_d | nonce_l | node ID)
//	dialer   -> listener: HMAC(K, "client" | purpose | nonce_l | nonce_d)
//
// K is derived from the cluster key. Each side's proof covers a nonce the other chose, so a
// recorded exchange cannot be replayed, and the labels keep one side's proof from serving
// as the other's. The dialer sends its proof only after checking the listener's, so a
// stranger's listener learns nothing; the listener hands the connection to raft only after
// checking the dialer's. Without TLS this authenticates the peers but does not encrypt or
// protect the stream from an active attacker in the path: on such networks configure TLS.
const (
	handshakeMagic   = "IMRA"
	handshakeVersion = 1
	// purposeRaft connections go to raft; purposeProve ones only prove the listener's
	// identity (the leader checks a member before adding it) and are closed.
	purposeRaft  = 'R'
	purposeProve = 'P'

	nonceLen         = 32
	handshakeTimeout = 5 * time.Second
	// maxHandshakes bounds the connections in handshake at once, so a flood of idle
	// connections cannot pile up goroutines; beyond it new ones are closed at once.
	maxHandshakes = 128
)

// ErrPeerAuth marks a peer that failed the cluster-key handshake.
var ErrPeerAuth = errors.New("peer did not prove the cluster key")

// peerAuth holds what a node proves itself with.
type peerAuth struct {
	key []byte // derived from the cluster key
	id  string // this node's ID, named in its proof as a listener
	tls *pki.Store
}

func newPeerAuth(clusterKey, id string, store *pki.Store) *peerAuth {
	k := sha256.Sum256([]byte("imnode raft handshake v1\x00" + clusterKey))
	return &peerAuth{key: k[:], id: id, tls: store}
}

func (a *peerAuth) mac(label string, purpose byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, a.key)
	h.Write([]byte(label))
	h.Write([]byte{purpose})
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// client runs the dialer's side on conn and returns the connection to use (TLS-wrapped when
// configured) and the listener's node ID.
func (a *peerAuth) client(conn net.Conn, addr string, purpose byte) (net.Conn, string, error) {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if a.tls != nil {
		tc := tls.Client(conn, a.tls.ClientConfig(addr))
		if err := tc.Handshake(); err != nil {
			return nil, "", fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	hello := make([]byte, 0, 6+nonceLen)
	hello = append(hello, handshakeMagic...)
	hello = append(hello, handshakeVersion, purpose)
	nd := randomNonce()
	hello = append(hello, nd...)
	if _, err := conn.Write(hello); err != nil {
		return nil, "", err
	}
	head := make([]byte, nonceLen+1)
	if _, err := io.ReadFull(conn, head); err != nil {
		return nil, "", fmt.Errorf("%w: %s closed the handshake: %v", ErrPeerAuth, addr, err)
	}
	nl := head[:nonceLen]
	rest := make([]byte, int(head[nonceLen])+sha256.Size)
	if _, err := io.ReadFull(conn, rest); err != nil {
		return nil, "", fmt.Errorf("%w: %s: %v", ErrPeerAuth, addr, err)
	}
	id, proof := rest[:len(rest)-sha256.Size], rest[len(rest)-sha256.Size:]
	if !hmac.Equal(proof, a.mac("server", purpose, nd, nl, id)) {
		return nil, "", fmt.Errorf("%w: %s answered with a wrong proof (another cluster key?)", ErrPeerAuth, addr)
	}
	if _, err := conn.Write(a.mac("client", purpose, nl, nd)); err != nil {
		return nil, "", err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, string(id), nil
}

// server runs the listener's side and returns the connection to use and the purpose.
func (a *peerAuth) server(conn net.Conn) (net.Conn, byte, error) {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if a.tls != nil {
		tc := tls.Server(conn, a.tls.ServerConfig(true))
		if err := tc.Handshake(); err != nil {
			return nil, 0, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	hello := make([]byte, 6+nonceLen)
	// The first byte tells an imnode peer from anything else (raft's own RPCs start with a
	// type byte of 0-3): a stranger is dropped at once, not at the handshake timeout.
	if _, err := io.ReadFull(conn, hello[:1]); err != nil {
		return nil, 0, fmt.Errorf("%w: no handshake: %v", ErrPeerAuth, err)
	}
	if hello[0] != handshakeMagic[0] {
		return nil, 0, fmt.Errorf("%w: not an imnode handshake (a raw raft client or another program)", ErrPeerAuth)
	}
	if _, err := io.ReadFull(conn, hello[1:]); err != nil {
		return nil, 0, fmt.Errorf("%w: no handshake: %v", ErrPeerAuth, err)
	}
	if !bytes.Equal(hello[:4], []byte(handshakeMagic)) || hello[4] != handshakeVersion {
		return nil, 0, fmt.Errorf("%w: not an imnode handshake (a raw raft client or another program)", ErrPeerAuth)
	}
	purpose, nd := hello[5], hello[6:]
	if purpose != purposeRaft && purpose != purposeProve {
		return nil, 0, fmt.Errorf("%w: unknown purpose %d", ErrPeerAuth, purpose)
	}
	nl := randomNonce()
	reply := make([]byte, 0, nonceLen+1+len(a.id)+sha256.Size)
	reply = append(reply, nl...)
	reply = append(reply, byte(len(a.id)))
	reply = append(reply, a.id...)
	reply = append(reply, a.mac("server", purpose, nd, nl, []byte(a.id))...)
	if _, err := conn.Write(reply); err != nil {
		return nil, 0, err
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, proof); err != nil {
		return nil, 0, fmt.Errorf("%w: no proof: %v", ErrPeerAuth, err)
	}
	if !hmac.Equal(proof, a.mac("client", purpose, nl, nd)) {
		return nil, 0, fmt.Errorf("%w: wrong proof (another cluster key?)", ErrPeerAuth)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, purpose, nil
}

func randomNonce() []byte {
	b := make([]byte, nonceLen)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}
