package jepsen

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Net cuts links between nodes with nftables. Its rules live in a table of their own
// (inet imjepsen_<port>) and match the run's node ports only, so concurrent runs on the
// same addresses and clients on 127.0.0.1 are not touched.
type Net struct {
	table string
	ports string

	mu  sync.Mutex
	cut map[[2]string]bool // IP pairs, both directions
}

// NewNet returns the network nemesis for a run whose nodes use ports. It deletes a table
// of the same name left by a crashed run and creates a fresh one.
func NewNet(ports []int) (*Net, error) {
	var ps []string
	for _, p := range ports {
		ps = append(ps, fmt.Sprint(p))
	}
	n := &Net{table: fmt.Sprintf("imjepsen_%d", ports[0]), ports: strings.Join(ps, ", "), cut: map[[2]string]bool{}}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, fmt.Errorf("nft not found (apt-get install -y nftables): %w", err)
	}
	_ = n.Close()
	removeStaleTables()
	script := fmt.Sprintf("add table inet %[1]s\nadd chain inet %[1]s out { type filter hook output priority 0; policy accept; }\n", n.table)
	if err := nft(script); err != nil {
		return nil, err
	}
	return n, nil
}

func nft(script string) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s (script: %q)", err, strings.TrimSpace(out.String()), script)
	}
	return nil
}

// Cut drops every packet between the two addresses, in both directions, on the run's
// ports. Already-cut pairs are skipped.
func (n *Net) Cut(pairs [][2]string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	for _, p := range pairs {
		for _, d := range [][2]string{{p[0], p[1]}, {p[1], p[0]}} {
			if n.cut[d] {
				continue
			}
			n.cut[d] = true
			// A's packets to B's listening ports, and A's replies from its own ports.
			fmt.Fprintf(&b, "add rule inet %s out ip saddr %s ip daddr %s meta l4proto { tcp, udp } th dport { %s } drop\n", n.table, d[0], d[1], n.ports)
			fmt.Fprintf(&b, "add rule inet %s out ip saddr %s ip daddr %s meta l4proto { tcp, udp } th sport { %s } drop\n", n.table, d[0], d[1], n.ports)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return nft(b.String())
}

// Heal removes every cut.
func (n *Net) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
	return nft(fmt.Sprintf("flush chain inet %s out\n", n.table))
}

// Cuts returns the cut pairs (one direction each), sorted, for the report.
func (n *Net) Cuts() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for p := range n.cut {
		if p[0] < p[1] {
			out = append(out, p[0]+"<->"+p[1])
		}
	}
	sort.Strings(out)
	return out
}

// Close deletes the table. It is safe to call when the table does not exist.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
	if err := nft(fmt.Sprintf("delete table inet %s\n", n.table)); err != nil && !strings.Contains(err.Error(), "No such file") {
		return err
	}
	return nil
}

// Partition cuts every link between a node of one side and a node of the other.
func (n *Net) Partition(sides ...[]*Node) error {
	var pairs [][2]string
	for i := range sides {
		for j := i + 1; j < len(sides); j++ {
			for _, a := range sides[i] {
				for _, b := range sides[j] {
					pairs = append(pairs, [2]string{a.IP, b.IP})
				}
			}
		}
	}
	return n.Cut(pairs)
}

var tableName = regexp.MustCompile(`table inet imjepsen_(\d+)`)

// removeStaleTables deletes the tables of runs that died without cleaning up (kill -9 of
// the runner): a table whose ports no process listens on any more on the node addresses.
func removeStaleTables() {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return
	}
	var ips []string
	for i := 0; i < 32; i++ {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", firstIP+i))
	}
	for _, m := range tableName.FindAllStringSubmatch(string(out), -1) {
		if p, err := strconv.Atoi(m[1]); err == nil && portsFree(ips, p) {
			_ = nft(fmt.Sprintf("delete table inet imjepsen_%d\n", p))
		}
	}
}
