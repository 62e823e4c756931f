package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/imnode/imnode/internal/proctest"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mustSelfSigned writes a certificate for 127.0.0.1 and its key, and returns their paths.
func mustSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imnode test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestTLSAndEncryptedGossipCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	cert, key := mustSelfSigned(t, dir)
	gossipKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	cfg := filepath.Join(dir, "imnode.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("tls:\n  certFile: %s\n  keyFile: %s\ngossipKey: %s\n", cert, key, gossipKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	procs := proctest.Launch(t, "s", 3, "-config", cfg)
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	post := func(p *proc, route, token, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", "https://"+p.HTTP+"/"+route, strings.NewReader(body))
		if token != "" {
			req.Header.Set("token", token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s over HTTPS: %v", route, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Ready over HTTPS: gossip (encrypted) found every member and raft elected a leader.
	for _, p := range procs {
		deadline := time.Now().Add(40 * time.Second)
		for {
			resp, err := hc.Get("https://" + p.HTTP + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready over HTTPS: %v; log:\n%s", p.ID, err, p.Tail())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + procs[0].HTTP + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP answered 200 on a TLS node")
	}
	// Writes through every node (followers forward to the leader over HTTPS).
	for i, p := range procs {
		r := post(p, "auth/user_register", "", fmt.Sprintf(`{"secret":"tuoyun","platform":1,"uid":"tls%d","name":"x"}`, i))
		if r["errCode"].(float64) != 0 {
			t.Fatalf("register through %s: %v", p.ID, r)
		}
	}
	tok := post(procs[2], "auth/user_token", "", `{"secret":"tuoyun","platform":1,"uid":"openIM123456"}`)["data"].(map[string]any)["token"].(string)
	r := post(procs[1], "manager/get_all_users_uid", tok, `{"operationID":"x"}`)
	if fmt.Sprint(r["uidList"]) != "[tls0 tls1 tls2]" {
		t.Fatalf("got %v, want the three users", r)
	}
}
