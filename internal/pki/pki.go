// Package pki holds a node's TLS material (its certificate and key, and the CA that signs
// every node of the cluster) and reloads it without a restart, so that the API, the raft
// transport and forwarding between nodes always use the newest valid files.
//
// Every tls.Config this package builds reads the current material at each handshake, so a
// Reload takes effect for the next connection without touching the listeners. A reload whose
// files cannot be read, do not match, or hold a certificate outside its validity period keeps
// the old material and returns why.
package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of a node.
type Files struct {
	// CertFile and KeyFile are this node's certificate (with any intermediates after it)
	// and private key. They serve the API and the raft transport, and are the client
	// certificate this node presents to the others.
	CertFile, KeyFile string
	// CAFile holds the certificates that sign the cluster's nodes. Empty: the node's own
	// certificate is the only trust anchor (a cluster whose nodes share one self-signed
	// certificate).
	CAFile string
	// ServerName, if set, is the name every peer's certificate must carry; empty: the host
	// of the address dialled (an IP SAN for IP addresses).
	ServerName string
}

// material is one consistent load of Files.
type material struct {
	cert    *tls.Certificate
	leaf    *x509.Certificate
	pool    *x509.CertPool
	modTime map[string]time.Time
}

// Store is a node's current TLS material.
type Store struct {
	files Files
	log   *slog.Logger
	now   func() time.Time

	mu  sync.RWMutex
	cur *material
}

// Load reads files. It fails if they cannot be read, the key does not match the
// certificate, or the certificate is expired or not yet valid.
func Load(files Files, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{files: files, log: logger, now: time.Now}
	m, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cur = m
	return s, nil
}

func (s *Store) read() (*material, error) {
	m := &material{modTime: map[string]time.Time{}}
	for _, f := range []string{s.files.CertFile, s.files.KeyFile, s.files.CAFile} {
		if f == "" {
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		m.modTime[f] = st.ModTime()
	}
	cert, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s: %w", s.files.CertFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w", s.files.CertFile, err)
	}
	now := s.now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired at %s", s.files.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("certificate %s is not valid before %s", s.files.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	cert.Leaf = leaf
	m.cert, m.leaf = &cert, leaf
	m.pool = x509.NewCertPool()
	if s.files.CAFile == "" {
		m.pool.AddCert(leaf)
	} else {
		b, err := os.ReadFile(s.files.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if !m.pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", s.files.CAFile)
		}
	}
	return m, nil
}

func (s *Store) material() *material {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// Reload reads the files again. On any error the old material stays in use.
func (s *Store) Reload() error {
	m, err := s.read()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cur = m
	s.mu.Unlock()
	s.log.Info("TLS certificates reloaded", "cert", s.files.CertFile, "notAfter", m.leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// changed reports whether a file's modification time differs from the loaded one's.
func (s *Store) changed() bool {
	m := s.material()
	for f, t := range m.modTime {
		st, err := os.Stat(f)
		if err != nil || !st.ModTime().Equal(t) {
			return true
		}
	}
	return false
}

// Watch reloads when a file changes (checked every interval) or when reload receives,
// until stop is closed. A failed reload is logged once per change and the old material
// stays.
func (s *Store) Watch(stop <-chan struct{}, reload <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		forced := false
		select {
		case <-stop:
			return
		case <-reload:
			forced = true
		case <-t.C:
			if !s.changed() {
				continue
			}
		}
		if err := s.Reload(); err != nil {
			if forced || err.Error() != lastErr {
				s.log.Error("TLS reload failed; keeping the certificates in use", "err", err)
			}
			lastErr = err.Error()
			continue
		}
		lastErr = ""
	}
}

// Certificate returns the certificate in use.
func (s *Store) Certificate() *tls.Certificate { return s.material().cert }

// ServerConfig is for listeners (the API, raft). With requireClient the client must present
// a certificate that the CA signed (raft); without it a client certificate is verified if
// given (the API: app clients present none, other nodes do).
func (s *Store) ServerConfig(requireClient bool) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if requireClient {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.material()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*m.cert},
				ClientAuth:   auth,
				ClientCAs:    m.pool,
				NextProtos:   []string{"http/1.1"},
			}, nil
		},
	}
}

// ClientConfig is for dialling another node at addr (host:port): it presents this node's
// certificate and verifies the peer's against the CA and the server name (Files.ServerName,
// or addr's host).
func (s *Store) ClientConfig(addr string) *tls.Config {
	name := s.files.ServerName
	if name == "" {
		name = addr
		if h, _, err := net.SplitHostPort(addr); err == nil {
			name = h
		}
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done below against the current CA: RootCAs would be fixed at
		// the time this config was built, before a reload.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.material().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.verifyServer(cs, name)
		},
	}
}

// ErrNoPeerCertificate is returned when a peer presented no certificate.
var ErrNoPeerCertificate = errors.New("peer presented no certificate")

func (s *Store) verifyServer(cs tls.ConnectionState, name string) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrNoPeerCertificate
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: s.material().pool, Intermediates: inter, DNSName: name,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return &VerifyError{Err: err}
	}
	return nil
}

// VerifyError is a peer certificate that the cluster's CA did not vouch for (or that does
// not carry the expected name). The connection was closed before anything was sent on it.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return "peer certificate: " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }
