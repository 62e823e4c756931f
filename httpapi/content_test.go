package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// contentSeeds are contents of every type, spaced and nested the ways clients send them,
// and keys that only encoding/json's matching finds.
var contentSeeds = []string{
	`{"text":"hi"}`,
	`{ "text" : "hi there" , "extra": [1, 2, {"text": "inner"}] }`,
	"{\n\t\"text\": \"a \\\"quoted\\\" word, a \\\\ and a \\u00e9\"\n}",
	`{"sourcePicture":{"uuid":"u","type":"png","size":1,"width":2,"height":3,"url":"http://x"},"bigPicture":{},"snapshotPicture":{}}`,
	`{"sourceUrl":"http://s","duration":3,"dataSize":10}`,
	`{"videoUrl":"http://v","videoType":"mp4","duration":5,"snapshotUrl":""}`,
	`{"sourceUrl":"http://f","fileName":"a.txt","fileSize":1}`,
	`{"text":"@b hi","atUserList":["b"],"isAtSelf":false}`,
	`{"multiMessage":[{"text":"a"},{"text":"b"}],"title":"t"}`,
	`{"longitude": -122.5, "latitude": 37.7e0, "description":"home"}`,
	`{"data":"{\"k\":1}","description":"d","extension":"e"}`,
	`{"text":"q","quoteMessage":{"text":"orig","seq":1}}`,
	`{"text":"first","text":"second"}`,
	`{"text":null,"data":true,"longitude":"x","latitude":[] }`,
	`{}`,
	`{"":{"":[[],{}]},"text":""}`,
	`{"TEXT":"hi"}`,
	`{"Text":"hi","text":""}`,
	`{"\u0074ext":"escaped key"}`,
	`{"ſourceUrl":"a long s folds to s"}`,
	`{"text":"` + strings.Repeat("x", 300) + `"}`,
}

// compactFields compacts each value of c, as scanContent stores them.
func compactFields(t testing.TB, c contentFields) contentFields {
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		raw := v.Field(i).Interface().(json.RawMessage)
		if raw == nil {
			continue
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			t.Fatalf("compact %q: %v", raw, err)
		}
		v.Field(i).Set(reflect.ValueOf(json.RawMessage(buf.Bytes())))
	}
	return c
}

// sameAsDecode checks that scanContent, where it does not fall back, gives what
// encoding/json gives: the same compacted content and the same value for every field.
func sameAsDecode(t testing.TB, content []byte) (fast bool) {
	compact, c, ok := scanContent(content)
	if !ok {
		return false
	}
	wantCompact, wantC, err := decodeContent(content)
	if err != nil {
		t.Fatalf("%q: encoding/json refused what scanContent took: %v", content, err)
	}
	if !bytes.Equal(compact, wantCompact) {
		t.Fatalf("%q: compacted to %q, encoding/json to %q", content, compact, wantCompact)
	}
	if want := compactFields(t, wantC); !reflect.DeepEqual(c, want) {
		t.Fatalf("%q: fields %+v, encoding/json's %+v", content, c, want)
	}
	return true
}

func TestScanContentAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range contentSeeds {
		fast := sameAsDecode(t, []byte(s))
		// Keys that need encoding/json's matching fall back; every other content does not.
		needsJSON := strings.Contains(s, `"TEXT"`) || strings.Contains(s, `"Text"`) ||
			strings.Contains(s, `\u0074`) || strings.Contains(s, "ſ")
		if fast == needsJSON {
			t.Errorf("%s: fast path %v, want %v", s, fast, !needsJSON)
		}
	}
}

// The fallback keeps encoding/json's answers: a key in another case, or escaped, still
// fills the field the checks look at.
func TestCheckContentMatchesKeysAsEncodingJSONDoes(t *testing.T) {
	for _, s := range []string{`{"TEXT":"hi"}`, `{"\u0074ext":"hi"}`, `{"Text":"","text":"hi"}`} {
		if _, err := checkContent(101, json.RawMessage(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := checkContent(101, json.RawMessage(`{"text":"hi","Text":""}`)); err == nil {
		t.Error(`{"text":"hi","Text":""}: the last of two keys for text is empty, want an error`)
	}
	if _, err := checkContent(105, json.RawMessage(`{"ſourceUrl":"s","fileName":"f"}`)); err != nil {
		t.Errorf("sourceUrl spelt with a long s: %v", err)
	}
}

// Every field of contentFields has its exact name in contentFields.field.
func TestContentFieldNamesAreAllMatched(t *testing.T) {
	for _, name := range contentFieldNames {
		var c contentFields
		f, plain := c.field([]byte(name))
		if f == nil || !plain {
			t.Fatalf("field %q is not matched exactly", name)
		}
		*f = json.RawMessage(`1`)
		if got := reflect.ValueOf(c).FieldByIndex(fieldIndexOf(t, name)).Interface().(json.RawMessage); string(got) != "1" {
			t.Fatalf("field %q goes to the wrong field", name)
		}
	}
}

func fieldIndexOf(t *testing.T, name string) []int {
	ty := reflect.TypeFor[contentFields]()
	for i := range ty.NumField() {
		if ty.Field(i).Tag.Get("json") == name {
			return []int{i}
		}
	}
	t.Fatalf("no field %q", name)
	return nil
}

// FuzzScanContent compares scanContent with encoding/json on well-formed JSON objects,
// which are all it is given (the request's decoder checks the content first).
func FuzzScanContent(f *testing.F) {
	for _, s := range contentSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		if !json.Valid(content) || len(content) == 0 || content[0] != '{' || content[len(content)-1] != '}' {
			return
		}
		sameAsDecode(t, content)
	})
}

func BenchmarkCheckContent(b *testing.B) {
	content := json.RawMessage(`{"text":"` + strings.Repeat("x", 300) + `"}`)
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := checkContent(101, content); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := decodeContent(content); err != nil {
				b.Fatal(err)
			}
		}
	})
}
