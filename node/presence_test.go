package node

import (
	"context"
	"reflect"
	"testing"
)

// fakeSockets gives each node of tc a fixed set of connections.
func fakeSockets(tc *testCluster, conns map[string][]Conn) {
	for _, n := range tc.nodes {
		mine := conns[n.ID()]
		n.SetPresence(func(uids []string) []Conn {
			var out []Conn
			for _, uid := range uids {
				for _, c := range mine {
					if c.UID == uid {
						out = append(out, c)
					}
				}
			}
			return out
		})
	}
}

func TestOnlineStatusAsksEveryNode(t *testing.T) {
	tc := mustCluster(t, 3)
	fakeSockets(tc, map[string][]Conn{
		"n1": {{UID: "a", Platform: 1, ConnID: 7}},
		"n2": {{UID: "b", Platform: 5, ConnID: 1}, {UID: "x", Platform: 2, ConnID: 2}},
		// A node's answer cannot claim to be another node.
		"n3": {{UID: "a", Platform: 2, ConnID: 1, NodeID: "n1"}},
	})
	for _, asker := range tc.nodes {
		got, err := asker.OnlineStatus(context.Background(), []string{"a", "b", "nobody"})
		if err != nil {
			t.Fatal(err)
		}
		want := Presence{Conns: []Conn{
			{UID: "a", Platform: 1, ConnID: 7, NodeID: "n1"},
			{UID: "a", Platform: 2, ConnID: 1, NodeID: "n3"},
			{UID: "b", Platform: 5, ConnID: 1, NodeID: "n2"},
		}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("asked %s: got %+v, want %+v", asker.ID(), got, want)
		}
	}

	// A node cut off is listed, and the others still answer.
	tc.partition("n3")
	asker := tc.node("n1")
	got, err := asker.OnlineStatus(context.Background(), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	want := Presence{Conns: []Conn{
		{UID: "a", Platform: 1, ConnID: 7, NodeID: "n1"},
		{UID: "b", Platform: 5, ConnID: 1, NodeID: "n2"},
	}, Unreachable: []string{"n3"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("with n3 cut off: got %+v, want %+v", got, want)
	}
}

func TestPresenceInternalRoute(t *testing.T) {
	tc := mustCluster(t, 1)
	n := tc.nodes[0]
	if status, _ := n.HandleInternal(PathPresence, []byte("not msgpack")); status != 400 {
		t.Fatalf("garbage: got HTTP %d, want 400", status)
	}
	// Without a gateway the node has no connections.
	got, err := n.OnlineStatus(context.Background(), []string{"a"})
	if err != nil || len(got.Conns) != 0 || len(got.Unreachable) != 0 {
		t.Fatalf("got %+v, %v; want nothing", got, err)
	}
}
