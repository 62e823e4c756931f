package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Load shapes: which conversations the sends go to (-hot-convs, -hot-frac), which nodes
// the requests go to (-target), and whether each request opens a new connection
// (-new-conns).

// conv picks the conversation of the worker's j-th single-chat op: with -hot-convs K, a
// fraction -hot-frac of the ops go to the first K conversations (at random among them) and
// the rest to the others; without it, the workers walk every conversation (spread).
func (g *mixGen) conv(j uint64) int {
	n := len(g.f.convs)
	k := g.o.hotConvs
	if k <= 0 || k >= n {
		if k > 0 {
			return g.rng.IntN(n)
		}
		return g.spread(j, n)
	}
	if g.rng.Float64() < g.o.hotFrac {
		return g.rng.IntN(k)
	}
	return k + g.rng.IntN(n-k)
}

// validTarget checks -target: all, leader, followers or nodeN (1-based into -nodes).
func validTarget(t string, nodes int) error {
	switch t {
	case "", "all", "leader", "followers":
		return nil
	}
	if s, ok := strings.CutPrefix(t, "node"); ok {
		if i, err := strconv.Atoi(s); err == nil && i >= 1 && i <= nodes {
			return nil
		}
	}
	return fmt.Errorf("-target must be all, leader, followers or node1..node%d, got %q", nodes, t)
}

// targetNodes resolves -target to indexes into o.nodes, asking the nodes who leads for
// leader and followers (at the start of each run: a run does not follow a new leader).
func targetNodes(o *options, token string) ([]int, error) {
	switch t := o.target; t {
	case "", "all":
		all := make([]int, len(o.nodes))
		for i := range all {
			all[i] = i
		}
		return all, nil
	case "leader", "followers":
		var leaders, followers []int
		for i, addr := range o.nodes {
			r, err := o.client(addr).WithToken(token).Get("cluster/status")
			if err == nil && r.ErrCode != 0 {
				err = fmt.Errorf("errCode %d %s", r.ErrCode, r.ErrMsg)
			}
			if err != nil {
				return nil, fmt.Errorf("-target %s: cluster/status of %s: %w", t, addr, err)
			}
			var st struct {
				State string `json:"state"`
			}
			if err := json.Unmarshal(r.Data, &st); err != nil {
				return nil, fmt.Errorf("-target %s: cluster/status of %s: %w", t, addr, err)
			}
			if st.State == "leader" {
				leaders = append(leaders, i)
			} else {
				followers = append(followers, i)
			}
		}
		out := leaders
		if t == "followers" {
			out = followers
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("-target %s: none of %s is one", t, strings.Join(o.nodes, ","))
		}
		return out, nil
	default:
		i, _ := strconv.Atoi(strings.TrimPrefix(t, "node"))
		return []int{i - 1}, nil
	}
}

// shape describes the load's shape for the report: "convs=20 hot=2@90% target=all keep-alive".
func (o *options) shape() string {
	s := fmt.Sprintf("convs=%d", o.convs)
	if o.hotConvs > 0 {
		s += fmt.Sprintf(" hot=%d@%g%%", o.hotConvs, o.hotFrac*100)
	}
	t := o.target
	if t == "" {
		t = "all"
	}
	s += " target=" + t
	if o.newConns {
		return s + " new-conns"
	}
	return s + " keep-alive"
}
