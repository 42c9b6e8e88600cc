package dataset

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamrec/streamrec/event"
)

// The e-commerce logs map their behaviours onto the ecommerce preset's
// event types (view < click < favorite < cart < purchase). A behaviour not
// listed is passed on as it is, for the pipeline to reject (and count).

// taobaoTypes maps Taobao UserBehavior's behavior_type.
var taobaoTypes = map[string]string{"pv": "view", "fav": "favorite", "cart": "cart", "buy": "purchase"}

// ottoTypes maps OTTO's event type.
var ottoTypes = map[string]string{"clicks": "click", "carts": "cart", "orders": "purchase"}

func mapType(m map[string]string, s string) string {
	if t, ok := m[s]; ok {
		return t
	}
	return s
}

// taobao reads Taobao's UserBehavior.csv: no header, the columns
// user_id,item_id,category_id,behavior_type,timestamp (Unix seconds). Each
// item gets the category of its first row.
func (l *loader) taobao(path string, d *Data) error {
	seen := map[string]bool{}
	return l.eachLine(path, func(prefix string, n int, line string) error {
		f := strings.Split(line, ",")
		if len(f) != 5 {
			return fmt.Errorf("want 5 comma-separated fields (user,item,category,behavior,timestamp), got %d", len(f))
		}
		sec, err := strconv.ParseInt(strings.TrimSpace(f[4]), 10, 64)
		if err != nil {
			return fmt.Errorf("timestamp %q: want Unix seconds", f[4])
		}
		in := event.Input{
			UserID:    strings.TrimSpace(f[0]),
			ItemID:    strings.TrimSpace(f[1]),
			Type:      mapType(taobaoTypes, strings.TrimSpace(f[3])),
			Timestamp: &event.Timestamp{Time: time.Unix(sec, 0).UTC()},
		}
		l.sourceID(&in, prefix, n)
		d.Events = append(d.Events, in)
		if cat := strings.TrimSpace(f[2]); !seen[in.ItemID] && in.ItemID != "" {
			seen[in.ItemID] = true
			it := event.Item{ID: in.ItemID}
			if cat != "" {
				it.Categories = []string{cat}
			}
			d.Items = append(d.Items, it)
		}
		return nil
	})
}

// sessionRecColumns finds the SessionId, ItemId and Time columns of a
// session-rec header.
func sessionRecColumns(header []string) ([3]int, error) {
	cols := [3]int{-1, -1, -1}
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "sessionid":
			cols[0] = i
		case "itemid":
			cols[1] = i
		case "time":
			cols[2] = i
		}
	}
	for _, c := range cols {
		if c < 0 {
			return cols, fmt.Errorf("header %q lacks SessionId, ItemId or Time", strings.Join(header, "\t"))
		}
	}
	return cols, nil
}

// sessionRec reads session-rec's prepared files (tab-separated, header
// SessionId, ItemId, Time in Unix seconds with a fraction; other columns
// ignored): every row is a click, and the session stands in for the user.
func (l *loader) sessionRec(path string, d *Data) error {
	var cols [3]int
	return l.eachLine(path, func(prefix string, n int, line string) error {
		f := strings.Split(line, "\t")
		if n == 1 {
			var err error
			cols, err = sessionRecColumns(f)
			return err
		}
		if len(f) <= max(cols[0], cols[1], cols[2]) {
			return fmt.Errorf("want at least %d tab-separated fields, got %d", max(cols[0], cols[1], cols[2])+1, len(f))
		}
		t, err := unixDecimal(strings.TrimSpace(f[cols[2]]))
		if err != nil {
			return err
		}
		in := event.Input{
			UserID:    strings.TrimSpace(f[cols[0]]),
			ItemID:    strings.TrimSpace(f[cols[1]]),
			Type:      "click",
			Timestamp: &event.Timestamp{Time: t},
		}
		l.sourceID(&in, prefix, n)
		d.Events = append(d.Events, in)
		return nil
	})
}

// unixDecimal reads Unix seconds with a decimal fraction exactly
// ("1396860669.277" is 277 ms, not the nearest float64).
func unixDecimal(s string) (time.Time, error) {
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err == nil && len(frac) > 0 && len(frac) <= 9 {
		var ns int64
		ns, err = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err == nil && ns >= 0 && sec >= 0 {
			return time.Unix(sec, ns).UTC(), nil
		}
	}
	if err == nil && frac == "" {
		return time.Unix(sec, 0).UTC(), nil
	}
	return event.ParseTime(s)
}

// yoochoose reads the RecSys Challenge 2015 files as published (no header):
// yoochoose-clicks.dat rows session,timestamp,item,category are clicks;
// yoochoose-buys.dat rows session,timestamp,item,price,quantity are
// purchases (value: the quantity). The session stands in for the user;
// a click's category (other than 0, unknown) becomes its item's, first
// seen first.
func (l *loader) yoochoose(path string, d *Data) error {
	seen := map[string]bool{}
	return l.eachLine(path, func(prefix string, n int, line string) error {
		f := strings.Split(line, ",")
		if len(f) != 4 && len(f) != 5 {
			return fmt.Errorf("want 4 (click: session,timestamp,item,category) or 5 (buy: session,timestamp,item,price,quantity) comma-separated fields, got %d", len(f))
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(f[1]))
		if err != nil {
			return fmt.Errorf("timestamp %q: want RFC 3339 text", f[1])
		}
		in := event.Input{
			UserID:    strings.TrimSpace(f[0]),
			ItemID:    strings.TrimSpace(f[2]),
			Type:      "click",
			Timestamp: &event.Timestamp{Time: t.UTC()},
		}
		if len(f) == 5 {
			in.Type = "purchase"
			if q, err := strconv.ParseFloat(strings.TrimSpace(f[4]), 64); err == nil && q > 0 {
				in.Value = &q
			}
		} else if cat := strings.TrimSpace(f[3]); !seen[in.ItemID] && in.ItemID != "" {
			seen[in.ItemID] = true
			it := event.Item{ID: in.ItemID}
			if cat != "" && cat != "0" {
				it.Categories = []string{cat}
			}
			d.Items = append(d.Items, it)
		}
		l.sourceID(&in, prefix, n)
		d.Events = append(d.Events, in)
		return nil
	})
}

// otto reads OTTO's session JSON lines: {"session": N, "events": [{"aid":
// article, "ts": Unix milliseconds (seconds in the Kaggle copy, told apart
// by size), "type": "clicks" | "carts" | "orders"}]}. The session stands
// in for the user.
func (l *loader) otto(path string, d *Data) error {
	return l.eachLine(path, func(prefix string, n int, line string) error {
		var s struct {
			Session json.Number `json:"session"`
			Events  []struct {
				AID  json.Number `json:"aid"`
				TS   json.Number `json:"ts"`
				Type string      `json:"type"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return err
		}
		for i, e := range s.Events {
			ts, err := e.TS.Int64()
			if err != nil {
				return fmt.Errorf("event %d: ts %q: want Unix milliseconds", i, e.TS)
			}
			t := time.UnixMilli(ts)
			if ts < 1e11 { // before 1973 in ms: the Kaggle copy's seconds
				t = time.Unix(ts, 0)
			}
			in := event.Input{
				UserID:    s.Session.String(),
				ItemID:    e.AID.String(),
				Type:      mapType(ottoTypes, e.Type),
				Timestamp: &event.Timestamp{Time: t.UTC()},
			}
			if l.ids {
				in.EventID = prefix + ":" + strconv.Itoa(n) + "." + strconv.Itoa(i)
			}
			d.Events = append(d.Events, in)
		}
		return nil
	})
}
