package httpapi

import (
	"context"
	"fmt"
	"strconv"
)

// maxPresenceUIDs bounds the uidList of user/get_users_online_status: each call asks every
// node, so it answers for a screenful of users, not for everyone.
const maxPresenceUIDs = 100

type onlineStatusReq struct {
	OperationID string   `json:"operationID"`
	UIDList     []string `json:"uidList"`
}

// platformStatus is one connection of an online user (OpenIM's detailPlatformStatus).
type platformStatus struct {
	// Platform is OpenIM's platform name ("IOS", "Android", ... "Linux"), PlatformID its
	// number, both from the token the connection authenticated with.
	Platform   string `json:"platform"`
	PlatformID int    `json:"platformID"`
	Status     string `json:"status"`
	// ConnID numbers the connection on its node; NodeID is the node that holds it.
	ConnID string `json:"connID"`
	NodeID string `json:"nodeID"`
	// ConnectedAt is when the connection opened (Unix milliseconds, that node's clock).
	ConnectedAt int64 `json:"connectedAt"`
}

// userOnlineStatus is one uid of the answer: "online" with its connections, or "offline".
type userOnlineStatus struct {
	UserID               string           `json:"userID"`
	Status               string           `json:"status"`
	DetailPlatformStatus []platformStatus `json:"detailPlatformStatus"`
}

// onlineStatusResp puts the per-uid statuses under data and, beside them, the nodes whose
// connections the answer could not include.
type onlineStatusResp struct {
	Data             []userOnlineStatus `json:"data"`
	UnreachableNodes []string           `json:"unreachableNodes"`
}

// platformNames are OpenIM's names of platforms 1-7.
var platformNames = []string{1: "IOS", 2: "Android", 3: "Windows", 4: "OSX", 5: "Web", 6: "MiniWeb", 7: "Linux"}

func platformName(p int) string {
	if p > 0 && p < len(platformNames) {
		return platformNames[p]
	}
	return "Unknown"
}

// getUsersOnlineStatus answers, per uid in the order asked, whether it has a WebSocket
// connection open on any node of the cluster, and where. Any valid token may ask about any
// uid, as in OpenIM: presence is what a chat app shows beside every name. A uid that is
// not registered is simply offline. The answer is live, not read from the replicated state:
// see node.OnlineStatus for how fresh it is.
func (s *Server) getUsersOnlineStatus(r *request) (any, error) {
	var req onlineStatusReq
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.opID = req.OperationID
	if err := firstErr(
		checkText("operationID", req.OperationID, maxOperationID),
		checkIDList("uidList", req.UIDList, maxPresenceUIDs, maxUID),
	); err != nil {
		return nil, err
	}
	p, err := s.b.OnlineStatus(context.Background(), req.UIDList)
	if err != nil {
		return nil, fmt.Errorf("online status: %w", err)
	}
	byUID := make(map[string][]platformStatus, len(req.UIDList))
	for _, c := range p.Conns {
		byUID[c.UID] = append(byUID[c.UID], platformStatus{
			Platform: platformName(c.Platform), PlatformID: c.Platform, Status: "online",
			ConnID: strconv.FormatUint(c.ConnID, 10), NodeID: c.NodeID, ConnectedAt: c.Since / 1e6,
		})
	}
	out := onlineStatusResp{Data: make([]userOnlineStatus, len(req.UIDList)), UnreachableNodes: nonNil(p.Unreachable)}
	for i, uid := range req.UIDList {
		st := userOnlineStatus{UserID: uid, Status: "offline", DetailPlatformStatus: nonNil(byUID[uid])}
		if len(st.DetailPlatformStatus) > 0 {
			st.Status = "online"
		}
		out.Data[i] = st
	}
	return out, nil
}
