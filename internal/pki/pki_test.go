package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func mustCA(t *testing.T, name string) *CA {
	t.Helper()
	ca, err := NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustWrite(t *testing.T, ca *CA, dir string) Files {
	t.Helper()
	f, err := ca.WriteNode(dir, "node", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// serving returns the serial of the certificate a TLS server built from s presents.
func serving(t *testing.T, s *Store) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.ServerConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the serial only
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestReloadTakesNewFilesForNewConnections(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, "A")
	files := mustWrite(t, ca, dir)
	s, err := Load(files, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	before := serving(t, s)
	mustWrite(t, ca, dir) // a renewed certificate in the same files
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if after := serving(t, s); after == before {
		t.Fatalf("still serving serial %s after reload", before)
	}
}

func TestReloadKeepsTheOldCertificateOnBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, "A")
	files := mustWrite(t, ca, dir)
	lb := &logBuffer{}
	s, err := Load(files, slog.New(slog.NewTextHandler(lb, nil)))
	if err != nil {
		t.Fatal(err)
	}
	before := serving(t, s)

	// An expired certificate.
	certPEM, keyPEM, err := ca.Issue("node", []string{"127.0.0.1"}, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(files.CertFile, certPEM, 0o644)
	_ = os.WriteFile(files.KeyFile, keyPEM, 0o600)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("reload of an expired certificate: got %v, want an 'expired' error", err)
	}
	if got := serving(t, s); got != before {
		t.Fatal("an expired certificate replaced the one in use")
	}

	// An unreadable one, noticed by Watch: logged, the old one stays.
	_ = os.WriteFile(files.CertFile, []byte("not a certificate"), 0o644)
	stop, reload := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() { s.Watch(stop, reload, 10*time.Millisecond); close(done) }()
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(lb.String(), "TLS reload failed") {
		if time.Now().After(deadline) {
			t.Fatalf("a bad file was not logged; log:\n%s", lb)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-done
	if got := serving(t, s); got != before {
		t.Fatal("an unreadable certificate replaced the one in use")
	}
}

func TestClientConfigVerifiesAgainstTheCA(t *testing.T) {
	caA, caB := mustCA(t, "A"), mustCA(t, "B")
	a, err := Load(mustWrite(t, caA, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := Load(mustWrite(t, caA, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(mustWrite(t, caB, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(client, server *Store) error {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerConfig(true))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := tls.Client(raw, client.ClientConfig(ln.Addr().String()))
		defer c.Close()
		return c.Handshake()
	}
	if err := dial(a, a2); err != nil {
		t.Fatalf("same CA: %v", err)
	}
	var ve *VerifyError
	if err := dial(a, b); err == nil || !errors.As(err, &ve) {
		t.Fatalf("server from another CA: got %v, want a VerifyError", err)
	}
	if err := dial(b, a); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	var ue x509.UnknownAuthorityError
	if err := dial(a, b); !errors.As(err, &ue) {
		t.Fatalf("got %v, want x509.UnknownAuthorityError inside", err)
	}
}
