package dataset

import (
	"os"
	"path/filepath"
	"testing"
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
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		dir := t.TempDir()
		var path string
		switch kind % 5 {
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
