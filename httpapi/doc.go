// Package httpapi serves imnode's HTTP API over fasthttp: the OpenIM Server API of
// spec/server-api.md, the read routes and cluster routes of DESIGN.md §3, health, metrics
// and the node-to-node /internal/ calls.
//
// # Shape of the code
//
// A handler decodes its body (encoding/json into a struct; pointer fields where presence
// matters), validates it, calls the Backend (Propose for writes, FSM reads after
// ConsistentRead) and returns a response struct. One adapter (adapter.go) does everything
// else: routing (404 unknown route, 405 wrong method), the body limit (413), the token
// check, the envelope {"errCode":0,"errMsg":"",...}, the error table (errors.go), metrics
// and one log line per failed request with route, operationID and errCode. Nothing keeps
// a *fasthttp.RequestCtx or a slice of the request after the handler returns: decoded
// strings and json.RawMessage values are copies.
//
// # Errors
//
// Handlers return *Error for what they find themselves (1001 with an errMsg naming the
// field and the limit, 1002) and the fsm/node sentinels otherwise, wrapped with context
// (the uid, the groupID). errorTable maps sentinels to codes with errors.Is, in order:
// fsm's domain errors to 1001/1101/1102/1201/1203/1204-1212/1301/1302/1004/1002,
// node.ErrUnknownServer to 1004, node.ErrNotApplied to 1801 and node.ErrOutcomeUnknown to
// 1802 (both HTTP 503).
// A write whose deadline passes counts as 1802 (it may be in the log), a read barrier's as
// 1801. Anything else is 500 with a generic errMsg; the log line has the detail.
// Wrong method, unknown route, unreadable request and a body over the limit answer HTTP
// 405/404/400/413 with errCode 1001 and an envelope.
//
// # Tokens
//
// auth/user_register and auth/user_token check the secret in constant time (1002 when
// wrong, 1001 when missing or over 32 characters) and issue an HS256 JWT signed with
// tokenPolicy.accessSecret, with claims uid, platform, rv, iat and exp (accessExpire days;
// expiredTime in the answer is exp in Unix seconds). rv is the user's registration index
// (fsm.User.RegIndex), or 0 for a configured administrator that is not registered.
// A token is checked on every other route: header "token" missing 1507, malformed 1503,
// bad signature or claims 1502, expired 1501; then its user: valid only if the user exists
// with the same RegIndex, or rv is 0 and the uid is in appManagerUid. So a deleted user's
// tokens stay dead even after the uid is registered again (1507). When rv is newer than
// this node's applied index (a token minted on another node right after registration),
// the check waits for a read barrier first. Parsed tokens and users' RegIndex are cached
// (fsm.UserRegIndex; a committed user deletion and a restore clear the latter), so the
// check opens no read transaction in the common case. VerifyToken exposes the same check
// to the WebSocket gateway.
//
// # Who may call what
//
// The spec's routes, the cluster routes, /metrics (when metricsRequireToken) and
// /debug/pprof/ need an app administrator's token (uid in appManagerUid); anything else
// gets 1002. A user's own token (client delivery) may call:
//
//   - user/get_user_info for any uids: profiles are public in an IM app, clients show
//     their peers' names and avatars;
//   - friend/get_friend_list, friend/get_blacklist (ownerUid), group/get_joined_group_list
//     and msg/newest_seq (uid) only for its own uid;
//   - group/get_group_info and group/get_group_member_list only for groups it is a member
//     of now (1002 otherwise, also for a group that does not exist, so users cannot probe);
//   - msg/pull_msg_by_seq only for its own single conversations (si_<a>_<b> with its uid
//     as a or b) and the conversations of groups it is a member of now. Because uids may
//     contain '_', si_a_b_b names both a with b_b and a_b with b; a single conversation
//     that is not in the user's own conversation index (msg/newest_seq) answers [];
//   - msg/send_msg, which takes manager/send_msg's body and answer, with sendID equal to
//     the token's uid;
//   - friend/delete_friend, friend/remove_blacklist, friend/is_friend and
//     friend/get_friends_info with ownerUid its own uid; group/quit_group with uid its own
//     uid; group/transfer_group with oldOwnerUid its own uid; group/get_groups_info for
//     groups it is a member of (1002 otherwise, as group/get_group_info);
//   - group/set_group_info, set_group_member_info, mute_group_member,
//     cancel_mute_group_member, transfer_group and dismiss_group acting as the token's
//     user (fsm's OpUID; "" for an administrator, who may do all of them). The FSM checks
//     the role when the entry applies: set_group_info owner or group admin; mute and
//     cancel_mute the owner, or a group admin over ordinary members only; the others the
//     owner only. A refusal is 1002.
//   - msg/revoke_msg, msg/delete_msgs, msg/mark_as_read,
//     conversation/get_all_conversations and conversation/set_conversation for itself,
//     as their sections say.
//   - user/get_users_online_status for any uids, as in OpenIM: presence is shown beside
//     every name in a chat app, like the profiles.
//
// Every other route with a user token answers 1002. An administrator's token may call all
// of them for anyone.
//
// # Idempotency
//
// A non-empty operationID makes a write idempotent: the key is
// sha256(route + "\n" + operationID + "\n" + raw body), plus the token's uid for a user's
// token (the acting user is not always in the body: group management acts as the token's
// user, so two users' requests with the same operationID and body must not share an
// answer). The key travels in the command, so the FSM applies it once and keeps its result
// (replicated). Before proposing, the handler looks the key up in the local FSM and answers
// a hit from the record. A repeat thus gets the first answer: the same groupID, msgID, seq,
// sendTime, or the same error. msgIDs and groupIDs are 32 lowercase hex characters from
// crypto/rand, made by the handler and put in the command, never in Apply. Reads are not
// proposed; their operationID is only logged. auth/user_register takes an optional
// operationID too (not in the spec).
//
// # Validation
//
// Every check happens before anything is proposed, so a bad request changes nothing.
// A field of the wrong JSON type is 1001 naming the field. Required means present in the
// body; IDs (uid, ownerUid, groupID, sendID, recvID, operationID, nodeID) must also be
// non-empty and free of control characters. operationID is required on the spec's routes
// and msg/send_msg, optional on the other reads and the cluster routes.
//
//	field                              limit
//	secret                             32 characters
//	uid, ownerUid, sendID, recvID      64 characters
//	groupID, nodeID                    64 characters
//	operationID                        128 characters
//	name, senderNickName               64 characters (may be empty)
//	icon                               1024 bytes
//	mobile / birth / email / ex        32 / 16 / 64 / 1024 characters
//	gender                             0 unknown, 1 male, 2 female
//	platform                           1 to 7
//	groupName                          1 to 128 characters, no control characters
//	introduction, notification         1024 characters
//	faceUrl, senderFaceURL             1024 bytes
//	reason                             1024 characters (required on invite, as in the spec)
//	uid lists, memberList              1 to 10,000 entries, no duplicates
//	forceList                          up to 1,000 uids, no duplicates
//	memberList[].setRole               0 member, 1 owner (exactly one), 2 admin
//
// friend/import_friend and friend/add_blacklist with ownerUid among the friends answer
// 1301 without proposing.
//
// # Messages
//
// sessionType is 1 (recvID is a user) or 2 (recvID is a groupID). content must be a JSON
// object (not a string holding one); it is stored compacted and served back as an object.
// contentType and what its content must hold:
//
//	101 text          text: non-empty string
//	102 picture       sourcePicture: object
//	103 sound         sourceUrl: non-empty string
//	104 video         videoUrl: non-empty string
//	105 file          sourceUrl and fileName: non-empty strings
//	106 @ message     text: non-empty string; atUserList: array
//	107 merged        multiMessage: array
//	108 card          any object
//	109 location      longitude (-180..180) and latitude (-90..90): numbers
//	110 custom        data: string (may be empty); description, extension: strings if present
//	111 revoke        any object
//	112 read receipt  any object
//	114 quote         text: non-empty string; quoteMessage: object
//
// Other contentTypes answer 1001. send_msg answers the spec's top-level sendTime (Unix
// nanoseconds) and msgID, plus seq and conversationID.
//
// # Read routes
//
// Unless the request has header "X-Consistency: stale", a read waits for
// Backend.ConsistentRead (bounded by readTimeout; failure 1801) and then reads the local
// FSM, so reads are linearizable on every node. Shapes (empty lists are [], never null):
//
//   - group/get_group_info {groupID} → data {groupID, groupName, introduction,
//     notification, faceUrl, ownerUid, createTime, memberCount, ex, status (0, or 2 once
//     dismissed)}; unknown group 1201.
//   - group/get_groups_info {groupIDList} → data [group info as above] in list order; the
//     first unknown groupID is 1201.
//   - group/get_group_member_list {groupID} → data [{groupID, uid, roleLevel, joinTime,
//     muteEndTime}] sorted by uid.
//   - group/get_joined_group_list {uid} → data [group info as above] sorted by groupID.
//   - friend/get_friend_list and friend/get_blacklist {ownerUid} → data [uid, ...]: plain
//     uid strings, sorted; a client gets profiles from user/get_user_info.
//   - friend/is_friend {ownerUid, uid} → data {isFriend}; friend/get_friends_info
//     {ownerUid, uidList} → data [{uid, isFriend, createTime, friendUser}] in list order,
//     createTime and friendUser only for friends.
//   - manager/account_check {uidList} (or checkUidList) → data {results: [{userID,
//     accountStatus: "registered"|"unregistered"}]} in list order; administrators only.
//   - msg/newest_seq {uid} → data {conversations: [{conversationID, maxSeq,
//     hasReadSeq, minSeq}]}.
//   - msg/pull_msg_by_seq {conversationID, beginSeq, endSeq} → data [{conversationID,
//     seq, msgID, sendID, recvID, sessionType, contentType, content, sendTime,
//     senderNickName, senderFaceURL}] in seq order, at most 1,000 per call (continue from
//     the last seq + 1); an unknown conversation answers []. Revoked messages carry
//     "revoked": true; the seqs the viewer deleted (msg/delete_msgs) carry "deleted": true
//     without content. The viewer is the token's user, or for an administrator the
//     optional uid (none: the stored messages, no deletions applied). Top-level minSeq:
//     the seqs below it were removed by message retention (0: none was), so a requested
//     seq the answer lacks is gone, never lost (retention.go).
//   - user/get_users_online_status {uidList (1-100)} → data [{userID, status
//     ("online"|"offline"), detailPlatformStatus: [{platform, platformID, status, connID,
//     nodeID, connectedAt}]}] in the order asked, and top-level unreachableNodes. It is
//     no read of the state and takes no barrier: the answering node asks every other
//     server for its WebSocket connections at the call (node.Node.OnlineStatus).
//
// uid-keyed reads (ownerUid, uid) answer 1101 for a uid that is not registered.
// createTime and joinTime are what the FSM stores (log time, Unix nanoseconds).
//
// # Revoke, read state and conversations
//
// Each route works with a user's own token for that user (uid must be the token's uid,
// else 1002) and with an app administrator's token for anyone; writes need operationID.
//
//   - msg/revoke_msg {operationID, conversationID, seq, revokerUid?} → data
//     {conversationID, seq, msgID}. Global: the message keeps its seq, msgID, sender and
//     sendTime; contentType becomes 2101 and content {revokerUid, revokeTime} (log time,
//     Unix nanoseconds), and every pull answers it with "revoked": true. The sender may
//     revoke their own message; in a group the owner and admins anyone's; others 1002. A
//     user token revokes as itself (revokerUid or uid, if given, must be its uid). An
//     administrator's token with revokerUid (or uid) acts for that user, with that user's
//     rights (unknown uid 1101); without one it revokes any message as the administrator.
//     No message at that seq (unknown conversation, seq beyond the max seq, removed by
//     retention) 1210; already revoked 1211; in a dismissed group 1204; seq 0 1001.
//     Clients get a "revoke" frame over WebSocket.
//   - msg/delete_msgs {operationID, uid, conversationID, seqs} → {}: per user. Only uid's
//     view changes: uid's pulls (with uid's token, or an administrator's with "uid")
//     answer those seqs with "deleted": true, contentType 0 and content {} (seq, msgID,
//     sender and sendTime stay, so the seqs stay gap-free); everyone else still sees the
//     message. Deleting a deleted seq succeeds. seqs: 1 to 1,000, no 0, no duplicates
//     (1001); a seq beyond the max seq 1210.
//   - msg/mark_as_read {operationID, uid, conversationID, hasReadSeq} → data
//     {conversationID, hasReadSeq}: the read position never goes back, a lower value
//     succeeds and answers the current one; above the max seq 1001; 0 1001. A single
//     chat's peer gets a "read_receipt" frame.
//   - conversation/set_conversation {operationID, uid, conversationID, isPinned?,
//     recvMsgOpt? | doNotDisturb?} → {}: only the fields present; recvMsgOpt 0 receive
//     and notify, 1 do not receive, 2 without notification; doNotDisturb true is 2, false
//     0; none of them, or both recvMsgOpt and doNotDisturb, 1001. The options are stored
//     for the user's clients; the server pushes every message regardless.
//   - conversation/get_all_conversations {uid} → data [{conversationID, sessionType,
//     maxSeq, hasReadSeq, unreadCount, latestMsg, latestMsgSendTime, isPinned, recvMsgOpt,
//     doNotDisturb}]: the user's single chats and groups, pinned first, then newest message
//     first, then by conversationID; unreadCount is maxSeq - hasReadSeq (never negative;
//     the user's own sends count until marked read); latestMsg is the pull shape of the
//     newest message as the user sees it (revoked, deleted), null without messages.
//   - msg/newest_seq answers hasReadSeq beside maxSeq for each conversation.
//
// The per-user writes need a conversation of the user: a single chat they sent or received
// a message in (else 1212) or a group they are a member of now (unknown group 1201, not a
// member 1203); unknown uid 1101.
//
// # Operations
//
// GET /healthz is 200 while the process serves; GET /readyz is 200 when Backend.Ready()
// and 503 (1801) otherwise. GET /metrics serves the Registry (imnode_http_requests_total
// {route,errcode}, imnode_http_request_duration_seconds{route}, Go and process metrics,
// and whatever other packages register). GET /cluster/status, POST /cluster/remove_node
// {operationID, nodeID} (1004 for an ID not in the configuration), GET /cluster/backup
// (application/octet-stream, after a read barrier) and GET /cluster/digest (data
// {appliedIndex, digest}, after a read barrier) need an administrator's token.
// /debug/pprof/ is served only when cfg.Pprof, behind the same token. Routes that do not
// answer an envelope on success (metrics, backup, pprof) answer failures with a non-200
// status (401 token, 403 permission, 400 arguments, 503 cluster), so the error is never
// saved as the content.
//
// /internal/* (any method) is for other nodes: header X-Cluster-Key must equal clusterKey
// (constant-time), and with TLS the caller must present a client certificate that the
// cluster's CA signed; else HTTP 403, a warning with the remote address, and nothing else.
// Its body limit is twice the client limit plus 64 KiB, because a forwarded command
// carries a client body plus the generated IDs.
//
// Handle attaches more routes before Serve, for the WebSocket gateway at GET /ws; they
// cannot shadow a route of the table, run without the adapter (their own auth, through
// VerifyToken) and are counted in the metrics under their path.
package httpapi
