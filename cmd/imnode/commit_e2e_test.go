package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/imnode/imnode/internal/proctest"
)

// A node commits fsm.db at leisure (once per fsmCommitDelay) unless a user connected to it
// receives the group's messages: an idle client of another user does not hurry the
// commits, the receiver's own client does. This checks the gateway's wiring into the FSM
// (fsm.Options.Awaits) in the binary, by the node's commit counter.
func TestIdleClientsLeaveCommitsAtLeisure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	cfg := writeConfig(t, t.TempDir(), "commit.yaml", "fsmCommitDelay: 1s\n")
	n := proctest.Launch(t, "l", 1, "-config", cfg)[0]
	n.WaitReady()
	for _, uid := range []string{"alice", "bob", "carol"} {
		mustRegister(t, n.Client(), uid)
	}
	tok, err := n.Client().TokenFor(secret, "carol")
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+n.HTTP+"/ws?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatalf("connect carol: %v", err)
	}
	defer ws.Close()
	admin := mustAdmin(t, n)

	// Twelve sends 150 ms apart: at leisure they take two or three commits (one per
	// second, the first at once after the quiet spell); in a hurry one commit each, unless
	// a commit took over 37 ms (four times its time is the rest).
	commitsDuring := func(to string) int {
		before := commitCount(t, n)
		for i := range 12 {
			mustOK(t, admin, "manager/send_msg", relSendBody(fmt.Sprintf("%s-%d", to, i), "alice", to, 1))
			time.Sleep(150 * time.Millisecond)
		}
		return commitCount(t, n) - before
	}
	toBob := commitsDuring("bob")
	toCarol := commitsDuring("carol")
	t.Logf("commits: 12 sends to bob %d, 12 sends to carol %d", toBob, toCarol)
	if toBob > 4 {
		t.Errorf("12 sends to bob, who is not connected, took %d commits in 1.8 s with fsmCommitDelay 1s; want at most 4 (carol's idle client must not hurry them)", toBob)
	}
	if toCarol < 8 {
		t.Errorf("12 sends to carol, who is connected, took %d commits; want at least 8 (her client waits for each)", toCarol)
	}
}

// commitCount is the node's imnode_fsm_commit_seconds_count.
func commitCount(t *testing.T, p *proctest.Proc) int {
	t.Helper()
	r := mustOKGet(t, p.Client(), "/metrics")
	sc := bufio.NewScanner(bytes.NewReader(r.Raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "imnode_fsm_commit_seconds_count "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("commit count %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no imnode_fsm_commit_seconds_count in /metrics")
	return 0
}
