package gateway

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium package (CI installs it: see .ci/run).
const chromiumPath = "/usr/bin/chromium"

// TestBrowserDemo drives the demo page in headless Chromium: two sessions on different
// nodes log in as two users, exchange messages over their WebSockets, and one reconnects
// with a resume without losing or repeating anything.
func TestBrowserDemo(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s is missing (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("browser test skipped: %s not found (apt-get install chromium to run it; under CI=true it must run)", chromiumPath)
	}
	nodes := startCluster(t, 3)
	n1, n2 := nodes[0].HTTP, nodes[1].HTTP
	mustUser(t, n1, "alice")
	mustUser(t, n1, "bob")

	dir := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // Chromium refuses to run as root with its sandbox
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(1100, 900),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// Start the browser without a timeout on its context (a timeout on the first run would
	// stop the browser when it expires), but give up on a start that hangs.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(browser) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(2 * time.Minute):
		cancelBrowser()
		t.Fatal("chromium did not start within 2 minutes")
	}
	tab := func() (context.Context, context.CancelFunc) {
		ctx, cancel := chromedp.NewContext(browser)
		ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
		return ctx, func() { cancelT(); cancel() }
	}
	alice, cancelA := tab()
	defer cancelA()
	bob, cancelB := tab()
	defer cancelB()

	login := func(ctx context.Context, addr, uid string) {
		t.Helper()
		err := chromedp.Do(ctx,
			chromedp.Navigate("http://"+addr+"/demo?uid="+uid),
			chromedp.WaitVisible(chromedp.CSS("#login")),
			chromedp.Click(chromedp.CSS("#login")),
			waitJS(`document.getElementById("status").textContent === "live"`),
		)
		if err != nil {
			t.Fatalf("%s logs in on %s: %v", uid, addr, err)
		}
	}
	send := func(ctx context.Context, to, text string) {
		t.Helper()
		err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#recvID"), to),
			chromedp.SetValue(chromedp.CSS("#text"), text),
			chromedp.Click(chromedp.CSS("#send")),
			waitJS(`document.getElementById("send-result").textContent.startsWith("sent")`),
		)
		if err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
	}
	sees := func(ctx context.Context, who, text string) {
		t.Helper()
		if err := chromedp.Do(ctx, waitJS(`[...document.querySelectorAll("#msgs li.msg")].some(li => li.dataset.text === `+jsString(text)+`)`)); err != nil {
			t.Fatalf("%s never saw %q: %v", who, text, err)
		}
	}

	login(alice, n1, "alice")
	login(bob, n2, "bob")
	send(alice, "bob", "hello bob from node 1")
	sees(bob, "bob", "hello bob from node 1")
	send(bob, "alice", "hi alice from node 2")
	sees(alice, "alice", "hi alice from node 2")

	// Bob reconnects (resume with his last seqs) while alice keeps writing.
	if err := chromedp.Do(bob, chromedp.Click(chromedp.CSS("#reconnect"))); err != nil {
		t.Fatal(err)
	}
	send(alice, "bob", "while bob reconnects")
	if err := chromedp.Do(bob, waitJS(`document.getElementById("status").textContent === "live"`)); err != nil {
		t.Fatal(err)
	}
	send(alice, "bob", "after the reconnect")
	sees(bob, "bob", "while bob reconnects")
	sees(bob, "bob", "after the reconnect")

	// Each of bob's messages exactly once, seqs 1..4 in order, and the page logged no
	// gap or duplicate.
	seqs, err := chromedp.Run(bob, chromedp.Evaluate[[]int](`[...document.querySelectorAll("#msgs li.msg")].map(li => Number(li.dataset.seq))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 4 {
		t.Fatalf("bob's page shows seqs %v, want 1 2 3 4", seqs)
	}
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("bob's page shows seqs %v, want 1 2 3 4", seqs)
		}
	}
	logText, err := chromedp.Run(bob, chromedp.TextContent(chromedp.CSS("#log")))
	if err != nil {
		t.Fatal(err)
	}
	if containsAny(logText, "DUPLICATE", "GAP") {
		t.Fatalf("bob's page log: %s", logText)
	}
	if out := os.Getenv("IMNODE_SCREENSHOT_DIR"); out != "" {
		for name, ctx := range map[string]context.Context{"alice": alice, "bob": bob} {
			if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
				_ = os.WriteFile(filepath.Join(out, "demo-"+name+".png"), png, 0o644)
			}
		}
	}
}

// waitJS waits until the JavaScript expression is truthy.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))(ctx, t)
		return chromedp.Void{}, err
	}
}

func jsString(s string) string {
	b := []byte{'"'}
	for _, r := range s {
		switch r {
		case '"', '\\':
			b = append(b, '\\', byte(r))
		default:
			b = append(b, string(r)...)
		}
	}
	return string(append(b, '"'))
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
	}
	return false
}
