package gateway

import (
	"testing"
	"time"
)

func TestOnlineListsLocalConnections(t *testing.T) {
	h := newHarness(t, Options{})
	h.register("a", "b", "c")
	a1 := h.mustDial("tok:a")
	a2 := h.mustDial("tok:a")
	h.mustDial("tok:b")
	// An admin connecting as c counts as c.
	h.mustDial("admin", "uid=c")
	waitFor := func(what string, want int, uids ...string) []LocalConn {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			got := h.gw.Online(uids)
			if len(got) == want {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %+v, want %d connections", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	got := waitFor("all", 4, "b", "a", "nobody", "a", "c")
	if got[0].UID != "b" || got[1].UID != "a" || got[2].UID != "a" || got[3].UID != "c" {
		t.Fatalf("order: got %+v, want b, a, a, c (the order asked, each uid once)", got)
	}
	if got[1].ConnID >= got[2].ConnID || got[1].Since.IsZero() {
		t.Fatalf("a's connections: got %+v, want increasing ids and a time", got[1:3])
	}
	if none := h.gw.Online([]string{"nobody"}); len(none) != 0 {
		t.Fatalf("unknown uid: got %+v, want nothing", none)
	}
	_ = a1.ws.Close()
	waitFor("after one of a's closed", 1, "a")
	_ = a2.ws.Close()
	waitFor("after both of a's closed", 0, "a")
}
