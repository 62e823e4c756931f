// Package apiclient is a small client of imnode's HTTP API, shared by the load generator,
// the fault-injection suite and the black-box tests. It knows the envelope and the
// transport, not the routes' meaning.
package apiclient

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"
)

// Response is the decoded envelope of one call. Raw holds the whole body, so callers can
// decode route-specific top-level fields (uidList, failedUidList, msgID...).
type Response struct {
	HTTPStatus int
	ErrCode    int             `json:"errCode"`
	ErrMsg     string          `json:"errMsg"`
	Data       json.RawMessage `json:"data"`
	Raw        []byte          `json:"-"`
}

// Decode unmarshals the whole body into v.
func (r *Response) Decode(v interface{}) error { return json.Unmarshal(r.Raw, v) }

// DecodeData unmarshals the data field into v.
func (r *Response) DecodeData(v interface{}) error {
	if len(r.Data) == 0 {
		return errors.New("response has no data")
	}
	return json.Unmarshal(r.Data, v)
}

// Client calls one node. It is safe for concurrent use; connections are pooled.
type Client struct {
	// Addr is host:port of the node's API.
	Addr string
	// Token is sent in header "token" when not empty.
	Token string
	// Timeout bounds each call (default 10 s).
	Timeout time.Duration
	// Header holds extra headers, such as X-Consistency.
	Header map[string]string

	hc *fasthttp.HostClient
}

// New returns a client of the node at addr (host:port).
func New(addr string) *Client {
	return &Client{Addr: addr, Timeout: 10 * time.Second, hc: &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      1024,
		MaxIdleConnDuration:           30 * time.Second,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
	}}
}

// NewTLS returns a client of the node at addr that speaks HTTPS, verifying the node's
// certificate with cfg (for example RootCAs set to the cluster's CA).
func NewTLS(addr string, cfg *tls.Config) *Client {
	c := New(addr)
	c.hc.IsTLS, c.hc.TLSConfig = true, cfg
	return c
}

// WithToken returns a copy of c that sends token, sharing c's connections.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.Token = token
	return &cp
}

// WithHeader returns a copy of c that also sends header k: v, sharing c's connections.
func (c *Client) WithHeader(k, v string) *Client {
	cp := *c
	cp.Header = map[string]string{}
	for hk, hv := range c.Header {
		cp.Header[hk] = hv
	}
	cp.Header[k] = v
	return &cp
}

// Post sends body (marshalled to JSON unless it is []byte) to route ("auth/user_token")
// and decodes the envelope. A transport error (timeout, refused) is returned as err; an
// errCode is not an error.
func (c *Client) Post(route string, body interface{}) (*Response, error) {
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	return c.do(fasthttp.MethodPost, route, b)
}

// Get sends a GET to path ("cluster/status") and decodes the envelope when it is JSON.
func (c *Client) Get(path string) (*Response, error) { return c.do(fasthttp.MethodGet, path, nil) }

func (c *Client) do(method, route string, body []byte) (*Response, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	scheme := "http://"
	if c.hc.IsTLS {
		scheme = "https://"
	}
	req.SetRequestURI(scheme + c.Addr + "/" + route)
	req.Header.SetMethod(method)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if c.Token != "" {
		req.Header.Set("token", c.Token)
	}
	for k, v := range c.Header {
		req.Header.Set(k, v)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if err := c.hc.DoTimeout(req, resp, timeout); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, route, err)
	}
	out := &Response{HTTPStatus: resp.StatusCode(), Raw: append([]byte(nil), resp.Body()...)}
	if len(out.Raw) > 0 && out.Raw[0] == '{' {
		if err := json.Unmarshal(out.Raw, out); err != nil {
			return out, fmt.Errorf("%s %s: bad envelope: %w", method, route, err)
		}
	}
	return out, nil
}

// TokenFor gets a token for uid from auth/user_token with secret.
func (c *Client) TokenFor(secret, uid string) (string, error) {
	r, err := c.Post("auth/user_token", map[string]interface{}{"secret": secret, "platform": 1, "uid": uid})
	if err != nil {
		return "", err
	}
	if r.ErrCode != 0 {
		return "", fmt.Errorf("user_token %s: errCode %d %s", uid, r.ErrCode, r.ErrMsg)
	}
	var d struct {
		Token string `json:"token"`
	}
	if err := r.DecodeData(&d); err != nil {
		return "", err
	}
	return d.Token, nil
}
