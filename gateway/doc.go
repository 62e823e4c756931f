// Package gateway is imnode's WebSocket gateway: app clients connect to any node at
// GET /ws and receive every message of their conversations as that node applies it,
// with conversationID and seq, in order, with no gap and no duplicate, across reconnects
// to other nodes. GET /demo serves a page that uses it.
//
// # Why every node pushes from its own FSM
//
// Every node applies every write (raft), so each node's FSM sees every message in log
// order. The FSM calls OnCommit after each applied batch; the gateway routes those
// messages to the connections it holds. No node forwards messages to another and no
// broker is needed: a client gets a message written through any node from whichever node
// it is connected to, as soon as that node has applied it.
//
// # Routing
//
// One dispatcher goroutine takes applied batches in order (a bounded queue: when it is
// full, apply waits, so memory stays bounded). A single-chat message goes to the
// connections of sendID and recvID; a group message to the connected members of the
// group. For a group the dispatcher walks the smaller of two sets: this node's connected
// uids (one membership lookup each) or the group's members (one scan), using the group's
// member count to choose. The dispatcher never waits on a client: it appends to a
// connection's bounded queue, and a client whose queue is full is closed with code 4002
// (too slow). A message frame is encoded once, however many connections receive it.
//
// # Delivery: no gap, no duplicate
//
// Each connection keeps pos, the last seq it wrote per conversation.
//
//  1. On connect the connection registers with the dispatcher first, then reads the
//     user's conversations with their max seq (the baseline), and only then writes the
//     handshake's 101 response. A message applied between registration and baseline is
//     both in the baseline and pushed; pos drops the copy. One applied after the 101,
//     when the client can first know it is connected, is always pushed.
//  2. The client's first frame decides how delivery starts. {"type":"resume","seqs":{...}}
//     sets pos to the client's seqs (0 for the user's conversations it did not list) and
//     replays, from the store, every message past pos (those the user deleted from their
//     own view, msg/delete_msgs, marked deleted and without content, as a pull answers). Any other first frame, or no frame
//     within ResumeWait (500 ms), starts live only: pos is the baseline, so the client
//     gets every message applied after it connected.
//  3. While waiting and replaying, live messages are held in a bounded pending list.
//     After the replay the pending messages are written unless their seq is <= pos (the
//     replay already wrote them). Then the connection is live: the dispatcher queues
//     frames directly, still checked against pos.
//  4. A live message more than one past pos (a node that installed a raft snapshot skipped
//     those messages in its apply stream) sends the connection back to step 3 for that
//     conversation: the writer pulls the missing seqs first.
//
// A conversation a live-only connection did not have when it connected (a new chat, a
// group joined later) starts with its first pushed message; a resumed connection gets it
// from seq 1. A client that tracks the last seq it saw per conversation and resumes with
// it on every reconnect, to any node, thus sees every message exactly once and in order,
// except messages that message retention removed before the replay reached them: the
// replay starts at the conversation's minSeq (Store.MinSeq) instead of taking them for a
// hole, and the client learns minSeq from msg/newest_seq or msg/pull_msg_by_seq.
//
// # Presence
//
// Online lists this node's connections of some uids, with the token's platform, a
// per-node connection number and when each registered. The node package asks every node
// for it to answer user/get_users_online_status for the cluster; a connection is listed
// from its registration to its unregistration (a clean close or reset at once, a silent
// client after PongWait).
//
// # Connections
//
// Each connection has a reader goroutine (the upgrade handler: reads frames, answers
// requests through the HTTP API in memory) and a writer goroutine (the only one that
// writes frames; it also pings every PingInterval). A connection from which nothing (no
// frame, no pong) arrives for PongWait is closed (4003). Close codes: 1001 node shutting
// down, leaving or cut off from the cluster; 1009 frame over maxFrameBytes; 1011 the node
// could not read its state; 4001 user deleted; 4002 too slow; 4003 heartbeat timeout.
// Handshakes are refused with HTTP 503 beyond maxConnections, while the node is not ready
// and while it shuts down, so clients go to another node.
package gateway
