package node

import (
	"errors"
)

// Errors of Propose and ConsistentRead that are about the cluster, not the command. The API
// answers them with 1801 and 1802.
var (
	// ErrNotApplied: no leader could be reached, or it refused, before the deadline. The
	// command was certainly not applied; retrying is safe.
	ErrNotApplied = errors.New("cluster unavailable: no leader reached before the deadline, not applied")
	// ErrOutcomeUnknown: leadership was lost after the command was proposed. It may or may
	// not be applied; retry with the same operationID.
	ErrOutcomeUnknown = errors.New("outcome unknown: leadership lost after proposing; retry with the same operationID")
	// ErrUnknownServer: remove_node of an ID that is not in the raft configuration.
	ErrUnknownServer = errors.New("no such server in the raft configuration")
)

// Member roles in /cluster/status.
const (
	RoleLeader   = "leader"
	RoleVoter    = "voter"
	RoleNonvoter = "nonvoter"
	RoleNone     = "none"
)

// MemberInfo is one member as gossip sees it.
type MemberInfo struct {
	NodeID     string `json:"nodeID"`
	HTTPAddr   string `json:"httpAddr"`
	RaftAddr   string `json:"raftAddr"`
	GossipAddr string `json:"gossipAddr"`
	// Gossip is "alive", "suspect", "dead" or "left".
	Gossip string `json:"gossip"`
	// Reason, for a member outside the raft configuration, says why it is not added: it
	// has not proven the cluster's credentials yet, or how its proof failed.
	Reason string `json:"reason,omitempty"`
}

// Member is one row of /cluster/status: gossip's view joined with the raft configuration.
type Member struct {
	MemberInfo
	// Role is "leader", "voter", "nonvoter" or "none" (seen over gossip, not configured).
	Role string `json:"role"`
	// AppliedIndex and LastIndex are the member's own, asked over an internal call when the
	// status is built (0 when it did not answer within a short timeout; Reachable false).
	AppliedIndex uint64 `json:"appliedIndex"`
	LastIndex    uint64 `json:"lastIndex"`
	// Lag is how far the member's applied index is behind this node's commit index.
	Lag       uint64 `json:"lag"`
	Reachable bool   `json:"reachable"`
}

// Status is the answer of /cluster/status.
type Status struct {
	NodeID         string   `json:"nodeID"`
	State          string   `json:"state"`
	Term           uint64   `json:"term"`
	LeaderID       string   `json:"leaderID"`
	LeaderHTTPAddr string   `json:"leaderHTTPAddr"`
	CommitIndex    uint64   `json:"commitIndex"`
	AppliedIndex   uint64   `json:"appliedIndex"`
	LastIndex      uint64   `json:"lastIndex"`
	Members        []Member `json:"members"`
}

// MemberSource is what node needs from the gossip layer (implemented by package cluster).
type MemberSource interface {
	// Members returns every member gossip knows, including this node.
	Members() []MemberInfo
}
