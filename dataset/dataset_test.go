package dataset

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/streamrec/streamrec/internal/shared"
)

func TestLoadML1M(t *testing.T) {
	d, err := Load(filepath.Join("testdata", "ml-1m"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != "ml-1m" || len(d.Events) != 3 || len(d.Items) != 2 {
		t.Fatalf("format %s, %d events, %d items", d.Format, len(d.Events), len(d.Items))
	}
	// Sorted by time: user 2's rating is the oldest.
	if d.Events[0].UserID != "2" || d.Events[2].ItemID != "20" || *d.Events[0].Value != 3 {
		t.Fatalf("events not in time order: %+v", d.Events)
	}
	if title := d.Items[0].Title; !utf8.ValidString(title) || title != "Café (1995)" {
		t.Fatalf("Latin-1 title not converted: %q", title)
	}
	if c := d.Items[0].Categories; len(c) != 2 || c[1] != "Drama" {
		t.Fatalf("genres: %v", c)
	}
}

func TestLoadSharedMovieLens(t *testing.T) {
	for _, tc := range []struct {
		name, format  string
		events, items int
	}{
		{"ml-100k", "ml-100k", 100000, 1682},
		{"ml-latest-small", "ml-latest", 100836, 9742},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shared.Dataset(t, tc.name)
			var last int64
			d, err := Load(dir, func(done, total int64) {
				if done < last || done > total {
					t.Fatalf("progress %d of %d after %d", done, total, last)
				}
				last = done
			})
			if err != nil {
				t.Fatal(err)
			}
			if d.Format != tc.format || len(d.Events) != tc.events || len(d.Items) != tc.items {
				t.Fatalf("%s: %d events, %d items", d.Format, len(d.Events), len(d.Items))
			}
			for i := 1; i < len(d.Events); i++ {
				if d.Events[i].Timestamp.Before(d.Events[i-1].Timestamp.Time) {
					t.Fatalf("event %d is older than event %d", i, i-1)
				}
			}
			if len(d.Items[0].Categories) == 0 {
				t.Fatalf("first item has no genres: %+v", d.Items[0])
			}
			if tc.format == "ml-latest" {
				tagged := 0
				for _, it := range d.Items {
					if len(it.Tags) > 0 {
						tagged++
					}
				}
				if tagged < 1000 { // 1,572 of its movies carry tags
					t.Fatalf("only %d movies have tags from tags.csv", tagged)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir, nil); err == nil {
		t.Fatal("an empty directory must be an unknown format")
	}
	bad := filepath.Join(dir, "events.csv")
	os.WriteFile(bad, []byte("user_id,item_id,type,value\nu,i,view,lots\n"), 0o644)
	if _, err := Load(bad, nil); err == nil {
		t.Fatal("a bad value must be an error naming the row")
	}
	os.WriteFile(filepath.Join(dir, "x.txt"), []byte("hello"), 0o644)
	if _, err := Load(filepath.Join(dir, "x.txt"), nil); err == nil {
		t.Fatal("a .txt file is not a known format")
	}
}

// FuzzLoad feeds arbitrary bytes to every file reader: errors are fine,
// panics are not.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("user_id,item_id,type,value,timestamp,event_id\nu,i,view,1,2024-01-01T00:00:00Z,e\n"), uint8(0))
	f.Add([]byte(`{"user_id":"u","item_id":"i","type":"view","timestamp":1700000000}`+"\n"), uint8(1))
	f.Add([]byte("1\t2\t3\t881250949\n"), uint8(2))
	f.Add([]byte("1::2::3::978300760\n"), uint8(3))
	f.Add([]byte("userId,movieId,rating,timestamp\n1,2,3.5,964982703\n"), uint8(4))
	f.Add([]byte("1,2268318,2520377,pv,1511544070\n"), uint8(5))
	f.Add([]byte("SessionId\tItemId\tTime\n1\t214536502\t1396860669.277\n"), uint8(6))
	f.Add([]byte(`{"session":0,"events":[{"aid":1,"ts":1659304800025,"type":"clicks"}]}`+"\n"), uint8(7))
	f.Add([]byte("1,2014-04-07T10:51:09.277Z,214536502,0\n"), uint8(8))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		dir := t.TempDir()
		var path string
		switch kind % 9 {
		case 0:
			path = filepath.Join(dir, "events.csv")
		case 1:
			path = filepath.Join(dir, "events.jsonl")
		case 2:
			path = filepath.Join(dir, "u.data")
		case 3:
			path = filepath.Join(dir, "ratings.dat")
		case 4:
			path = filepath.Join(dir, "ratings.csv")
		case 5:
			path = filepath.Join(dir, "UserBehavior.csv")
		case 6:
			path = filepath.Join(dir, "clicks.txt")
		case 7:
			path = filepath.Join(dir, "train.jsonl")
		case 8:
			path = filepath.Join(dir, "yoochoose-clicks.dat")
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := Load(dir, nil)
		if err != nil {
			return
		}
		for _, e := range d.Events {
			_ = e.UserID
		}
	})
}

// TestLoadSharedEcommerce reads the three e-commerce logs in
// ../shared/datasets with their behaviours mapped onto the ecommerce
// preset's types, the counts their PROVENANCE.md gives.
func TestLoadSharedEcommerce(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		events       int
		items        int
		types        map[string]int
		first        time.Time
	}{
		{"taobao-userbehavior-head", "taobao", 84475, 55368,
			map[string]int{"view": 75872, "cart": 4497, "favorite": 2356, "purchase": 1750},
			time.Date(2017, 9, 11, 8, 16, 39, 0, time.UTC)},
		{"yoochoose-clicks-100k", "session-rec", 70278 + 13568, 0,
			map[string]int{"click": 83846},
			time.Date(2014, 4, 1, 1, 2, 21, 719e6, time.UTC)},
		{"otto-sample", "otto", 862, 0,
			map[string]int{"click": 800, "cart": 52, "purchase": 10},
			time.Date(2022, 7, 31, 22, 0, 0, 25e6, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shared.Dataset(t, tc.name)
			if f, err := Detect(dir); err != nil || f != tc.format {
				t.Fatalf("Detect: %q, %v", f, err)
			}
			d, err := LoadContext(context.Background(), dir, Options{SourceIDs: true})
			if err != nil {
				t.Fatal(err)
			}
			types := map[string]int{}
			ids := map[string]bool{}
			for i, ev := range d.Events {
				types[ev.Type]++
				if ev.UserID == "" || ev.ItemID == "" || ev.EventID == "" || ids[ev.EventID] {
					t.Fatalf("event %d: %+v (empty field or repeated id)", i, ev)
				}
				ids[ev.EventID] = true
				if i > 0 && ev.Timestamp.Before(d.Events[i-1].Timestamp.Time) {
					t.Fatalf("event %d is older than event %d", i, i-1)
				}
			}
			if d.Format != tc.format || len(d.Events) != tc.events || len(d.Items) != tc.items || !maps.Equal(types, tc.types) {
				t.Fatalf("%s: %d events %v, %d items", d.Format, len(d.Events), types, len(d.Items))
			}
			if got := d.Events[0].Timestamp.Time; !got.Equal(tc.first) {
				t.Fatalf("first event at %v, want %v", got, tc.first)
			}
		})
	}
}

type wantEvent struct {
	user, item, typ string
	unix            int64 // milliseconds
	value           float64
}

func TestLoadFormats(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		path   string // inside the directory; "" loads the directory
		format string
		events []wantEvent
		items  int
	}{
		{"taobao headerless", map[string]string{"UserBehavior.csv": "1,10,7,pv,1511544070\n1,11,7,buy,1511544071\n2,10,7,fav,1511544060\n2,12,8,cart,1511544072\n"},
			"", "taobao", []wantEvent{{"2", "10", "favorite", 1511544060000, 0}, {"1", "10", "view", 1511544070000, 0}, {"1", "11", "purchase", 1511544071000, 0}, {"2", "12", "cart", 1511544072000, 0}}, 3},
		{"taobao file of any name", map[string]string{"head.csv": "1,10,7,pv,1511544070\n"},
			"head.csv", "taobao", []wantEvent{{"1", "10", "view", 1511544070000, 0}}, 1},
		{"session-rec tsv", map[string]string{"a_test.txt": "SessionId\tItemId\tTime\n5\t9\t1396860669.277\n", "a_train.txt": "SessionId\tItemId\tTime\n3\t8\t1396437466.94\n"},
			"", "session-rec", []wantEvent{{"3", "8", "click", 1396437466940, 0}, {"5", "9", "click", 1396860669277, 0}}, 0},
		{"yoochoose dat", map[string]string{"yoochoose-clicks.dat": "1,2014-04-07T10:51:09.277Z,214536502,0\n", "yoochoose-buys.dat": "1,2014-04-07T10:54:09.868Z,214536502,1046,2\n"},
			"", "yoochoose", []wantEvent{{"1", "214536502", "click", 1396867869277, 0}, {"1", "214536502", "purchase", 1396868049868, 2}}, 1},
		{"otto ms and the Kaggle copy's seconds", map[string]string{"train.jsonl": `{"session":0,"events":[{"aid":5,"ts":1659304800025,"type":"clicks"},{"aid":6,"ts":1659304801000,"type":"orders"}]}` + "\n" + `{"session":1,"events":[{"aid":5,"ts":1659304802,"type":"carts"}]}` + "\n"},
			"", "otto", []wantEvent{{"0", "5", "click", 1659304800025, 0}, {"0", "6", "purchase", 1659304801000, 0}, {"1", "5", "cart", 1659304802000, 0}}, 0},
		{"events csv named otherwise", map[string]string{"log.csv": "user_id,item_id,type,timestamp\nu,i,view,1700000000\n"},
			"", "events", []wantEvent{{"u", "i", "view", 1700000000000, 0}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(filepath.Join(dir, "PROVENANCE.md"), []byte("# not data\n"), 0o644)
			d, err := Load(filepath.Join(dir, tc.path), nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []wantEvent
			for _, ev := range d.Events {
				w := wantEvent{ev.UserID, ev.ItemID, ev.Type, ev.Timestamp.UnixMilli(), 0}
				if ev.Value != nil {
					w.value = *ev.Value
				}
				got = append(got, w)
			}
			if d.Format != tc.format || !slices.Equal(got, tc.events) || len(d.Items) != tc.items {
				t.Fatalf("%s, %d items:\n got %v\nwant %v", d.Format, len(d.Items), got, tc.events)
			}
		})
	}
}

func TestLoadDirectoryErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.csv"), []byte("1,10,7,pv,1511544070\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.jsonl"), []byte(`{"session":0,"events":[]}`+"\n"), 0o644)
	if _, err := Detect(dir); err == nil || !strings.Contains(err.Error(), "mixes formats") {
		t.Fatalf("a directory of two formats: %v", err)
	}
	if _, err := Detect(filepath.Join(dir, "nothing-here")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("a missing path: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "c.txt"), []byte("hello\n"), 0o644)
	if _, err := Detect(filepath.Join(dir, "c.txt")); !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "taobao") {
		t.Fatalf("an unknown file must list the formats: %v", err)
	}
}

// TestSourceIDs: ids derived from the source are the same on every load,
// unique, and differ between two different files of the same name.
func TestSourceIDs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.csv")
	os.WriteFile(path, []byte("user_id,item_id,type,timestamp,event_id\nu,i,view,1700000002,\nu,j,view,1700000001,\nu,k,view,1700000003,own\n"), 0o644)
	load := func(opt Options) []string {
		d, err := LoadContext(context.Background(), path, opt)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, ev := range d.Events {
			ids = append(ids, ev.EventID)
		}
		return ids
	}
	first := load(Options{SourceIDs: true})
	if len(first) != 3 || !strings.HasPrefix(first[0], "events.csv@") || !strings.HasSuffix(first[0], ":3") || !strings.HasSuffix(first[1], ":2") || first[2] != "own" {
		t.Fatalf("ids %v: want events.csv@HASH:ROW, time order, the file's own id kept", first)
	}
	if again := load(Options{SourceIDs: true}); !slices.Equal(first, again) {
		t.Fatalf("ids changed between loads: %v, %v", first, again)
	}
	if plain := load(Options{}); plain[0] != "" || plain[2] != "own" {
		t.Fatalf("without SourceIDs no ids are made: %v", plain)
	}
	os.WriteFile(path, []byte("user_id,item_id,type,timestamp,event_id\nv,i,view,1700000002,\nu,j,view,1700000001,\nu,k,view,1700000003,own\n"), 0o644)
	if other := load(Options{SourceIDs: true}); other[0] == first[0] {
		t.Fatalf("a different file of the same name yields the same ids: %v", other)
	}
}

func TestLoadContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadContext(ctx, filepath.Join("testdata", "ml-1m"), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled load: %v", err)
	}
}
