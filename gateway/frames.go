package gateway

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/imnode/imnode/fsm"
	"github.com/valyala/fasthttp"
)

// clientFrame is the part of a client frame the gateway itself reads. The rest of a
// "send" or "pull" frame is the body of the HTTP route it stands for.
type clientFrame struct {
	Type  string            `json:"type"`
	ReqID json.RawMessage   `json:"reqID"`
	Seqs  map[string]uint64 `json:"seqs"`
}

// msgFrame is the server → client "msg" frame: the fields of msg/pull_msg_by_seq.
type msgFrame struct {
	Type string `json:"type"`
	fsm.MessageView
}

func encodeMessage(m *fsm.Message) []byte {
	return encodeView(m.View())
}

// encodeView encodes a message frame from its view (a replay hides the messages the user
// deleted from their own view).
func encodeView(v fsm.MessageView) []byte {
	if len(v.Content) == 0 || !json.Valid(v.Content) {
		// Stored content is validated JSON; this only guards the frame's own validity.
		v.Content = json.RawMessage("{}")
	}
	b, err := json.Marshal(msgFrame{Type: "msg", MessageView: v})
	if err != nil {
		// Only strings, numbers and validated raw JSON: it always encodes.
		panic("gateway: encode message frame: " + err.Error())
	}
	return b
}

// lazyFrame encodes a message once, for however many connections receive it, and only
// if one does. Only the dispatcher goroutine uses it.
type lazyFrame struct {
	m *fsm.Message
	b []byte
}

func (f *lazyFrame) bytes() []byte {
	if f.b == nil {
		f.b = encodeMessage(f.m)
	}
	return f.b
}

// encodeNotice writes a notice as {"type":..., its fields...}. A field named "type" in
// Fields is overwritten by the notice's type.
func encodeNotice(n *fsm.Notice) []byte {
	m := make(map[string]any, len(n.Fields)+1)
	for k, v := range n.Fields {
		m[k] = v
	}
	m["type"] = n.Type
	b, err := json.Marshal(m)
	if err != nil {
		// Appliers build Fields from strings and numbers; anything else is a bug.
		panic(fmt.Sprintf("gateway: encode %s notice: %v", n.Type, err))
	}
	return b
}

// errorFrame answers a frame the gateway could not take: {"type":"error","reqID",
// "errCode","errMsg"}.
func errorFrame(reqID json.RawMessage, code int, msg string) []byte {
	b, _ := json.Marshal(struct {
		Type    string          `json:"type"`
		ReqID   json.RawMessage `json:"reqID,omitempty"`
		ErrCode int             `json:"errCode"`
		ErrMsg  string          `json:"errMsg"`
	}{"error", reqID, code, msg})
	return b
}

func pongFrame(reqID json.RawMessage) []byte {
	b, _ := json.Marshal(struct {
		Type  string          `json:"type"`
		ReqID json.RawMessage `json:"reqID,omitempty"`
	}{"pong", reqID})
	return b
}

func strconvQuote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// forward answers a "send" or "pull" frame by running it through the HTTP API as an
// in-memory request with the connection's token: "send" is msg/send_msg (an
// administrator's connection for a uid uses manager/send_msg, always as that uid), "pull"
// is msg/pull_msg_by_seq. The body is the frame without type and reqID; a send without
// sendID sends as the connection's uid. The answer is the route's envelope with type and
// reqID added, so sendAck carries errCode, errMsg, msgID, seq, sendTime and
// conversationID, and pullResp carries errCode, errMsg and data.
func (c *conn) forward(respType string, reqID json.RawMessage, frame []byte) []byte {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(frame, &body); err != nil {
		return errorFrame(reqID, 1001, "malformed frame: "+err.Error())
	}
	delete(body, "type")
	delete(body, "reqID")
	route := "msg/pull_msg_by_seq"
	if respType == "sendAck" {
		route = "msg/send_msg"
		uidJSON, _ := json.Marshal(c.uid)
		if raw, ok := body["sendID"]; !ok {
			body["sendID"] = uidJSON
		} else if c.admin {
			var sendID string
			if json.Unmarshal(raw, &sendID) != nil || sendID != c.uid {
				return errorFrame(reqID, 1002, "this connection sends only as "+strconvQuote(c.uid))
			}
		}
		if c.admin {
			route = "manager/send_msg"
		}
	}
	// Keys are sorted by encoding/json, so a retried frame makes the same body and so the
	// same idempotency key for its operationID.
	reqBody, err := json.Marshal(body)
	if err != nil {
		return errorFrame(reqID, 1001, "malformed frame: "+err.Error())
	}
	resp := c.callAPI(route, reqBody)
	if len(resp) < 2 || resp[0] != '{' {
		return errorFrame(reqID, 500, "the API gave no JSON answer")
	}
	out := make([]byte, 0, len(resp)+len(reqID)+40)
	out = append(out, `{"type":"`...)
	out = append(out, respType...)
	out = append(out, '"')
	if len(reqID) > 0 {
		out = append(out, `,"reqID":`...)
		out = append(out, reqID...)
	}
	if len(resp) > 2 {
		out = append(out, ',')
	}
	return append(out, resp[1:]...)
}

// callAPI runs one POST through the API handler in memory and returns the answer body.
func (c *conn) callAPI(route string, body []byte) []byte {
	var req fasthttp.Request
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("/" + route)
	req.Header.SetContentType("application/json")
	req.Header.Set("token", c.token)
	req.SetBodyRaw(body)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, c.remote, nil)
	c.g.deps.API(&ctx)
	return append([]byte(nil), ctx.Response.Body()...)
}
