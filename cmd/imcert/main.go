// Command imcert makes a test certificate authority and node certificates for trying
// imnode's TLS mode (`make cluster-tls`). Production clusters use their own CA.
//
//	imcert -dir DIR [-hosts 127.0.0.1,localhost] [-nodes node] [-ca-name NAME]
//
// It writes DIR/ca.pem and, per node name, DIR/NAME.pem and DIR/NAME-key.pem, valid for a
// year for the given hosts (IP addresses become IP SANs, names DNS SANs). An existing
// DIR/ca.pem is left as it is unless -force is given.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imnode/imnode/internal/pki"
)

func main() {
	dir := flag.String("dir", "certs", "output directory")
	hosts := flag.String("hosts", "127.0.0.1,localhost", "comma-separated IP addresses and DNS names the certificates are valid for")
	nodes := flag.String("nodes", "node", "comma-separated certificate names (one certificate each)")
	caName := flag.String("ca-name", "imnode test CA", "the CA's common name")
	force := flag.Bool("force", false, "overwrite an existing ca.pem")
	flag.Parse()
	if err := run(*dir, split(*hosts), split(*nodes), *caName, *force); err != nil {
		fmt.Fprintln(os.Stderr, "imcert:", err)
		os.Exit(1)
	}
}

func run(dir string, hosts, nodes []string, caName string, force bool) error {
	if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err == nil && !force {
		fmt.Printf("%s already holds a CA; keeping it (-force makes a new one)\n", dir)
		return nil
	}
	ca, err := pki.NewCA(caName, 2*365*24*time.Hour)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		f, err := ca.WriteNode(dir, n, hosts)
		if err != nil {
			return err
		}
		fmt.Printf("wrote %s, %s, %s\n", f.CAFile, f.CertFile, f.KeyFile)
	}
	return nil
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
