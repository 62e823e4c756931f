package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// contentFields are the content fields the validation looks at. Decoding into raw
// messages checks every type's shape in one pass over the content, without a map.
type contentFields struct {
	Text          json.RawMessage `json:"text"`
	Data          json.RawMessage `json:"data"`
	Description   json.RawMessage `json:"description"`
	Extension     json.RawMessage `json:"extension"`
	SourcePicture json.RawMessage `json:"sourcePicture"`
	SourceURL     json.RawMessage `json:"sourceUrl"`
	VideoURL      json.RawMessage `json:"videoUrl"`
	FileName      json.RawMessage `json:"fileName"`
	AtUserList    json.RawMessage `json:"atUserList"`
	MultiMessage  json.RawMessage `json:"multiMessage"`
	Longitude     json.RawMessage `json:"longitude"`
	Latitude      json.RawMessage `json:"latitude"`
	QuoteMessage  json.RawMessage `json:"quoteMessage"`
}

// contentRules is the table of doc.go: for each contentType, what its content object
// must hold. A type whose check is nil takes any JSON object.
var contentRules = map[int32]func(c *contentFields) error{
	101: func(c *contentFields) error { return needString("text", c.Text, true) }, // text
	102: func(c *contentFields) error { return needObject("sourcePicture", c.SourcePicture) },
	103: func(c *contentFields) error { return needString("sourceUrl", c.SourceURL, true) }, // sound
	104: func(c *contentFields) error { return needString("videoUrl", c.VideoURL, true) },
	105: func(c *contentFields) error { // file
		return firstErr(needString("sourceUrl", c.SourceURL, true), needString("fileName", c.FileName, true))
	},
	106: func(c *contentFields) error { // @ in a group
		return firstErr(needString("text", c.Text, true), needArray("atUserList", c.AtUserList))
	},
	107: func(c *contentFields) error { return needArray("multiMessage", c.MultiMessage) }, // merged forward
	// 108 business card, 111 revoke and 112 read receipt take any object.
	108: nil,
	109: func(c *contentFields) error { // location
		return firstErr(needNumber("longitude", c.Longitude, 180), needNumber("latitude", c.Latitude, 90))
	},
	110: func(c *contentFields) error { // custom
		return firstErr(needString("data", c.Data, false),
			optString("description", c.Description), optString("extension", c.Extension))
	},
	111: nil,
	112: nil,
	114: func(c *contentFields) error { // quote
		return firstErr(needString("text", c.Text, true), needObject("quoteMessage", c.QuoteMessage))
	},
}

// checkContent validates content for its contentType and returns it compacted, the form
// it is stored and served in.
func checkContent(contentType int32, content json.RawMessage) ([]byte, error) {
	check, known := contentRules[contentType]
	if !known {
		return nil, errArgs("contentType %d is not supported: use 101-112 or 114", contentType)
	}
	if len(content) == 0 {
		return nil, errArgs("content is required")
	}
	if content[0] != '{' {
		return nil, errArgs("content must be a JSON object, not a JSON %s", jsonKindOf(content))
	}
	if check != nil {
		var c contentFields
		if err := json.Unmarshal(content, &c); err != nil {
			return nil, errArgs("content: %v", err)
		}
		if err := check(&c); err != nil {
			return nil, errArgs("content of contentType %d: %v", contentType, err)
		}
	}
	var buf bytes.Buffer
	buf.Grow(len(content))
	if err := json.Compact(&buf, content); err != nil {
		return nil, errArgs("content: %v", err)
	}
	return buf.Bytes(), nil
}

func jsonKindOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func needString(field string, raw json.RawMessage, nonEmpty bool) error {
	if len(raw) == 0 {
		return fmt.Errorf("%s (a string) is required", field)
	}
	if raw[0] != '"' {
		return fmt.Errorf("%s must be a string, not a JSON %s", field, jsonKindOf(raw))
	}
	if nonEmpty && len(raw) == 2 { // `""`
		return fmt.Errorf("%s must not be empty", field)
	}
	return nil
}

func optString(field string, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	return needString(field, raw, false)
}

func needObject(field string, raw json.RawMessage) error {
	return needKind(field, raw, '{', "an object")
}

func needArray(field string, raw json.RawMessage) error { return needKind(field, raw, '[', "an array") }

// needKind requires raw to be present and to open with open (the decoder has already
// checked that it is well-formed JSON).
func needKind(field string, raw json.RawMessage, open byte, kind string) error {
	if len(raw) == 0 {
		return fmt.Errorf("%s (%s) is required", field, kind)
	}
	if raw[0] != open {
		return fmt.Errorf("%s must be %s, not a JSON %s", field, kind, jsonKindOf(raw))
	}
	return nil
}

// needNumber requires a number in [-limit, limit] (degrees of longitude or latitude).
func needNumber(field string, raw json.RawMessage, limit float64) error {
	if len(raw) == 0 {
		return fmt.Errorf("%s (a number) is required", field)
	}
	if jsonKindOf(raw) != "number" {
		return fmt.Errorf("%s must be a number, not a JSON %s", field, jsonKindOf(raw))
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || v < -limit || v > limit {
		return fmt.Errorf("%s must be a number from %g to %g, got %s", field, -limit, limit, raw)
	}
	return nil
}
