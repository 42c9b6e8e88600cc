package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	sjson "github.com/segmentio/encoding/json"

	"github.com/streamrec/streamrec/event"
)

// Rejection reports one event of a batch that was not accepted.
type Rejection struct {
	Index  int    `json:"index"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// ErrTooManyEvents is returned when a batch holds more events than allowed.
var ErrTooManyEvents = errors.New("too many events in one batch")

// SyntaxError is a body that is not the JSON it should be; the whole request
// is refused.
type SyntaxError struct {
	Msg string
	Err error // what the reader or the JSON decoder said, if anything
}

func (e *SyntaxError) Error() string { return e.Msg }

// Unwrap returns the underlying error, so that a body-size limit hit while
// reading can be told apart.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Decode reads a batch of events: a JSON array of event objects (or a single
// object), or, when ndjson is set, one JSON object per line. An element whose
// fields have the wrong types is rejected on its own; broken JSON in an array
// refuses the whole body. At most maxEvents events are read.
func Decode(r io.Reader, ndjson bool, maxEvents int) ([]event.Input, []Rejection, error) {
	if ndjson {
		return decodeNDJSON(r, maxEvents)
	}
	data, err := io.ReadAll(r)
	if err != nil { // the body-size limit, say: reported where encoding/json meets it
		return decodeStream(io.MultiReader(bytes.NewReader(data), errReader{err}), maxEvents)
	}
	if out, rejected, ok := decodeArray(data, maxEvents); ok {
		return out, rejected, nil
	}
	return decodeStream(bytes.NewReader(data), maxEvents)
}

// decodeArray is the way a well-formed array of at most maxEvents is read:
// split by segmentio's parser in one pass (encoding/json's streaming
// Decoder took 40% of BenchmarkDecode500). Anything else, ok false, goes
// through decodeStream, whose errors say where the body broke.
func decodeArray(data []byte, maxEvents int) (out []event.Input, rejected []Rejection, ok bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '[' {
		return nil, nil, false
	}
	var raws []sjson.RawMessage
	rest, err := sjson.Parse(data, &raws, 0)
	if err != nil || len(bytes.TrimSpace(rest)) > 0 || len(raws) > maxEvents {
		return nil, nil, false
	}
	for i, raw := range raws {
		out, rejected = appendElement(out, rejected, json.RawMessage(raw), i)
	}
	return out, rejected, true
}

// appendElement decodes element i of an array onto out, or, rejected, its
// rejection onto rejected and an empty event onto out (indices stay
// aligned; the caller skips rejected ones). A large body is milliseconds of
// decoding: every 32 events it lets the requests queued behind it (reads,
// mostly) run rather than wait for the scheduler's 10 ms preemption.
func appendElement(out []event.Input, rejected []Rejection, raw json.RawMessage, i int) ([]event.Input, []Rejection) {
	if i%32 == 31 {
		runtime.Gosched()
	}
	var in event.Input
	if rej := decodeOne(raw, i, &in); rej != nil {
		return append(out, event.Input{}), append(rejected, *rej)
	}
	return append(out, in), rejected
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decodeStream reads a JSON array of event objects (or a single object)
// with encoding/json's streaming Decoder, naming where broken JSON breaks.
func decodeStream(r io.Reader, maxEvents int) ([]event.Input, []Rejection, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, nil, &SyntaxError{Msg: "empty body: expected a JSON array of events"}
	}
	if err != nil {
		return nil, nil, &SyntaxError{Msg: "invalid JSON: " + err.Error(), Err: err}
	}
	switch tok {
	case json.Delim('{'):
		// A single event object: decode it from the start again.
		var raw json.RawMessage
		mr := io.MultiReader(bytes.NewReader([]byte("{")), dec.Buffered(), r)
		one := json.NewDecoder(mr)
		if err := one.Decode(&raw); err != nil {
			return nil, nil, &SyntaxError{Msg: "invalid JSON: " + err.Error(), Err: err}
		}
		// Anything after the object would be dropped unseen: refuse it.
		if _, err := one.Token(); err != io.EOF {
			// Err carries a body-size limit hit while reading, if that was it.
			return nil, nil, &SyntaxError{Err: err, Msg: "invalid JSON: data after the first event object; send several events as a JSON array, or as NDJSON (one object per line) with Content-Type: application/x-ndjson"}
		}
		var in event.Input
		if rej := decodeOne(raw, 0, &in); rej != nil {
			return nil, []Rejection{*rej}, nil
		}
		return []event.Input{in}, nil, nil
	case json.Delim('['):
	default:
		return nil, nil, &SyntaxError{Msg: "expected a JSON array of event objects"}
	}
	var out []event.Input
	var rejected []Rejection
	for i := 0; dec.More(); i++ {
		if i >= maxEvents {
			return nil, nil, fmt.Errorf("%w: at most %d allowed", ErrTooManyEvents, maxEvents)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, &SyntaxError{Msg: fmt.Sprintf("invalid JSON at event %d: %v", i, err), Err: err}
		}
		out, rejected = appendElement(out, rejected, raw, i)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, &SyntaxError{Msg: "invalid JSON: unterminated array: " + err.Error(), Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, &SyntaxError{Msg: "invalid JSON: data after the array"}
	}
	return out, rejected, nil
}

func decodeOne(raw json.RawMessage, i int, in *event.Input) *Rejection {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return &Rejection{Index: i, Reason: "an event must be a JSON object"}
	}
	if !utf8.Valid(raw) {
		return &Rejection{Index: i, Field: InvalidUTF8Path(raw), Reason: "is not valid UTF-8"}
	}
	// segmentio's decoder: the same semantics as encoding/json's (unknown
	// fields refused, Timestamp's UnmarshalJSON), 1.6x faster on a batch
	// (BenchmarkDecode500).
	if _, err := sjson.Parse(raw, in, sjson.DisallowUnknownFields); err != nil {
		var te *sjson.UnmarshalTypeError
		if errors.As(err, &te) {
			want := jsonKind(te.Type.Kind().String())
			got := valueKind(te.Value)
			if got == want { // a number out of the range of the field's type
				got = "a number out of range"
			}
			return &Rejection{Index: i, Field: te.Field, Reason: fmt.Sprintf("%s must be a JSON %s, not %s", te.Field, want, got)}
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			field, _ := strconv.Unquote(name)
			return &Rejection{Index: i, Field: field, Reason: "unknown field; an event has event_id, user_id, item_id, type, value, timestamp and context (put anything else in context)"}
		}
		return &Rejection{Index: i, Reason: err.Error()}
	}
	return nil
}

// InvalidUTF8Path names where in the JSON document raw the first string
// with invalid UTF-8 lies ("user_id", "items[2].title"); "" when it is the
// document itself or cannot be told. encoding/json would silently turn such
// bytes into U+FFFD, merging distinct ids, so callers refuse them instead.
func InvalidUTF8Path(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || utf8.Valid(raw) {
		return ""
	}
	switch raw[0] {
	case '{':
		dec := json.NewDecoder(bytes.NewReader(raw))
		if _, err := dec.Token(); err != nil {
			return ""
		}
		for dec.More() {
			start := dec.InputOffset()
			tok, err := dec.Token()
			if err != nil {
				return ""
			}
			key, _ := tok.(string)
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return ""
			}
			if !utf8.Valid(raw[start:dec.InputOffset()]) && utf8.Valid(v) {
				return key // the key itself
			}
			if !utf8.Valid(v) {
				if sub := InvalidUTF8Path(v); sub != "" {
					if sub[0] == '[' {
						return key + sub
					}
					return key + "." + sub
				}
				return key
			}
		}
	case '[':
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return ""
		}
		for j, v := range elems {
			if !utf8.Valid(v) {
				if sub := InvalidUTF8Path(v); sub != "" {
					if sub[0] == '[' {
						return fmt.Sprintf("[%d]%s", j, sub)
					}
					return fmt.Sprintf("[%d].%s", j, sub)
				}
				return fmt.Sprintf("[%d]", j)
			}
		}
	}
	return ""
}

// valueKind names the JSON kind of a value by its first byte (the decoder's
// UnmarshalTypeError.Value holds the input from the offending value on,
// quoted).
func valueKind(v string) string {
	if u, err := strconv.Unquote(v); err == nil {
		v = u
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "nothing"
	}
	switch c := v[0]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "number"
	}
	return "invalid"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "float64", "float32", "int", "int64", "ptr":
		return "number"
	case "struct":
		return "value of the right type"
	}
	return goKind
}

func decodeNDJSON(r io.Reader, maxEvents int) ([]event.Input, []Rejection, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []event.Input
	var rejected []Rejection
	i := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if i >= maxEvents {
			return nil, nil, fmt.Errorf("%w: at most %d allowed", ErrTooManyEvents, maxEvents)
		}
		var in event.Input
		if !json.Valid(line) {
			rejected = append(rejected, Rejection{Index: i, Reason: "line is not valid JSON"})
		} else if rej := decodeOne(line, i, &in); rej != nil {
			rejected = append(rejected, *rej)
		}
		out = append(out, in)
		i++
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, nil, &SyntaxError{Msg: fmt.Sprintf("line of event %d is longer than 1 MiB", i)}
		}
		return nil, nil, &SyntaxError{Msg: "reading body: " + err.Error(), Err: err}
	}
	if i == 0 {
		return nil, nil, &SyntaxError{Msg: "empty body: expected one JSON event object per line"}
	}
	return out, rejected, nil
}
