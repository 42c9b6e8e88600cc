// Package dataset reads interaction data sets from disk: the MovieLens
// formats (ml-100k, ml-1m, ml-latest) and generic CSV or JSON-lines files of
// events and items. It only parses; validation and weighting are the
// pipeline's job.
//
// Invariant: Load returns events sorted by time (stable: ties keep file
// order), so a replay of a data set follows its own clock.
package dataset

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/streamrec/streamrec/event"
)

// Data is a loaded data set.
type Data struct {
	Format string
	Items  []event.Item
	Events []event.Input // sorted by time when every event has one
}

// Formats lists what Load understands.
const Formats = "a directory holding ml-100k (u.data, u.item), ml-1m (ratings.dat, movies.dat) or ml-latest (ratings.csv, movies.csv) files, or events.csv / events.jsonl (with optional items.csv / items.jsonl), or a single .csv / .jsonl events file"

// ErrUnknownFormat is returned when nothing at the path is a known format.
var ErrUnknownFormat = errors.New("dataset: no known format")

// Progress is told how many bytes were read so far, and the total.
type Progress func(done, total int64)

// Load reads the data set at path (a directory or a file).
func Load(path string, progress Progress) (*Data, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(path, name))
		return err == nil
	}
	p := &progressReader{report: progress}
	var d *Data
	switch {
	case !st.IsDir():
		d, err = loadGeneric(p, path, "")
	case exists("u.data"):
		p.total = size(filepath.Join(path, "u.data"), filepath.Join(path, "u.item"))
		d, err = loadML100K(p, path)
	case exists("ratings.dat"):
		p.total = size(filepath.Join(path, "ratings.dat"), filepath.Join(path, "movies.dat"))
		d, err = loadML1M(p, path)
	case exists("ratings.csv"):
		p.total = size(filepath.Join(path, "ratings.csv"), filepath.Join(path, "movies.csv"))
		d, err = loadMLLatest(p, path)
	case exists("events.jsonl"):
		d, err = loadGeneric(p, filepath.Join(path, "events.jsonl"), path)
	case exists("events.csv"):
		d, err = loadGeneric(p, filepath.Join(path, "events.csv"), path)
	default:
		return nil, fmt.Errorf("%w in %s: expected %s", ErrUnknownFormat, path, Formats)
	}
	if err != nil {
		return nil, err
	}
	for _, ev := range d.Events {
		if ev.Timestamp == nil {
			return d, nil // keep file order
		}
	}
	slices.SortStableFunc(d.Events, func(a, b event.Input) int { return a.Timestamp.Compare(b.Timestamp.Time) })
	return d, nil
}

func size(paths ...string) int64 {
	var n int64
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}

type progressReader struct {
	r      io.Reader
	done   int64
	total  int64
	report Progress
}

func (p *progressReader) wrap(r io.Reader) io.Reader {
	p.r = r
	return p
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.report != nil {
		p.report(p.done, p.total)
	}
	return n, err
}

// eachLine calls fn for every line of the file (without the newline).
func eachLine(p *progressReader, path string, fn func(lineNo int, line string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(p.wrap(f))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		if err := fn(n, line); err != nil {
			return fmt.Errorf("dataset: %s line %d: %w", filepath.Base(path), n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("dataset: read %s: %w", path, err)
	}
	return nil
}

// rating builds a rating event from MovieLens fields.
func rating(user, item, value, ts string) (event.Input, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil {
		return event.Input{}, fmt.Errorf("rating %q: %w", value, err)
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		return event.Input{}, fmt.Errorf("timestamp %q: %w", ts, err)
	}
	return event.Input{
		UserID:    strings.TrimSpace(user),
		ItemID:    strings.TrimSpace(item),
		Type:      "rating",
		Value:     &v,
		Timestamp: &event.Timestamp{Time: time.Unix(sec, 0).UTC()},
	}, nil
}

func loadML100K(p *progressReader, dir string) (*Data, error) {
	d := &Data{Format: "ml-100k"}
	err := eachLine(p, filepath.Join(dir, "u.data"), func(_ int, line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return fmt.Errorf("want 4 tab-separated fields, got %d", len(f))
		}
		ev, err := rating(f[0], f[1], f[2], f[3])
		d.Events = append(d.Events, ev)
		return err
	})
	if err != nil {
		return nil, err
	}
	var genres []string
	if b, err := os.ReadFile(filepath.Join(dir, "u.genre")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, _, ok := strings.Cut(strings.TrimSpace(line), "|"); ok {
				genres = append(genres, name)
			}
		}
	}
	itemPath := filepath.Join(dir, "u.item")
	if _, err := os.Stat(itemPath); err != nil {
		return d, nil
	}
	err = eachLine(p, itemPath, func(_ int, line string) error {
		f := strings.Split(toUTF8(line), "|")
		if len(f) < 5 {
			return fmt.Errorf("want at least 5 '|'-separated fields, got %d", len(f))
		}
		it := event.Item{ID: f[0], Title: f[1]}
		if t, err := time.Parse("02-Jan-2006", f[2]); err == nil {
			it.PublishedAt = &t
		}
		for g, flag := range f[5:] {
			if flag == "1" && g < len(genres) {
				it.Categories = append(it.Categories, genres[g])
			}
		}
		d.Items = append(d.Items, it)
		return nil
	})
	return d, err
}

func loadML1M(p *progressReader, dir string) (*Data, error) {
	d := &Data{Format: "ml-1m"}
	err := eachLine(p, filepath.Join(dir, "ratings.dat"), func(_ int, line string) error {
		f := strings.Split(line, "::")
		if len(f) != 4 {
			return fmt.Errorf("want 4 '::'-separated fields, got %d", len(f))
		}
		ev, err := rating(f[0], f[1], f[2], f[3])
		d.Events = append(d.Events, ev)
		return err
	})
	if err != nil {
		return nil, err
	}
	moviePath := filepath.Join(dir, "movies.dat")
	if _, err := os.Stat(moviePath); err != nil {
		return d, nil
	}
	err = eachLine(p, moviePath, func(_ int, line string) error {
		f := strings.Split(toUTF8(line), "::")
		if len(f) != 3 {
			return fmt.Errorf("want 3 '::'-separated fields, got %d", len(f))
		}
		d.Items = append(d.Items, event.Item{ID: f[0], Title: f[1], Categories: genres(f[2])})
		return nil
	})
	return d, err
}

func genres(s string) []string {
	if s == "" || s == "(no genres listed)" {
		return nil
	}
	return strings.Split(s, "|")
}

// toUTF8 reads older MovieLens files, which are Latin-1, as UTF-8.
func toUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	r := make([]rune, 0, len(s))
	for i := 0; i < len(s); i++ {
		r = append(r, rune(s[i]))
	}
	return string(r)
}

func loadMLLatest(p *progressReader, dir string) (*Data, error) {
	d := &Data{Format: "ml-latest"}
	err := eachCSV(p, filepath.Join(dir, "ratings.csv"), func(rec map[string]string) error {
		ev, err := rating(rec["userId"], rec["movieId"], rec["rating"], rec["timestamp"])
		d.Events = append(d.Events, ev)
		return err
	})
	if err != nil {
		return nil, err
	}
	moviePath := filepath.Join(dir, "movies.csv")
	if _, err := os.Stat(moviePath); err != nil {
		return d, nil
	}
	err = eachCSV(p, moviePath, func(rec map[string]string) error {
		d.Items = append(d.Items, event.Item{ID: rec["movieId"], Title: rec["title"], Categories: genres(rec["genres"])})
		return nil
	})
	return d, err
}

// eachCSV calls fn for each row of a CSV file with a header, as a map from
// column name to value.
func eachCSV(p *progressReader, path string, fn func(map[string]string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(p.wrap(bufio.NewReader(f)))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("dataset: %s: header: %w", filepath.Base(path), err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	rec := make(map[string]string, len(header))
	for line := 2; ; line++ {
		row, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dataset: %s: %w", filepath.Base(path), err)
		}
		clear(rec)
		for i, v := range row {
			if i < len(header) {
				rec[header[i]] = v
			}
		}
		if err := fn(rec); err != nil {
			return fmt.Errorf("dataset: %s row %d: %w", filepath.Base(path), line, err)
		}
	}
}

// loadGeneric reads a CSV (columns user_id, item_id, type, value, timestamp,
// event_id) or JSON-lines events file (the API's event objects), and
// items.csv / items.jsonl from itemDir when given.
func loadGeneric(p *progressReader, path, itemDir string) (*Data, error) {
	d := &Data{Format: "events"}
	p.total = size(path)
	var err error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		err = eachCSV(p, path, func(rec map[string]string) error {
			in := event.Input{EventID: rec["event_id"], UserID: rec["user_id"], ItemID: rec["item_id"], Type: rec["type"]}
			if s := rec["value"]; s != "" {
				f, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return fmt.Errorf("value %q: %w", s, err)
				}
				in.Value = &f
			}
			if s := rec["timestamp"]; s != "" {
				t, err := event.ParseTime(s)
				if err != nil {
					return err
				}
				in.Timestamp = &event.Timestamp{Time: t}
			}
			d.Events = append(d.Events, in)
			return nil
		})
	case ".jsonl", ".ndjson":
		err = eachLine(p, path, func(_ int, line string) error {
			var in event.Input
			if err := json.Unmarshal([]byte(line), &in); err != nil {
				return err
			}
			d.Events = append(d.Events, in)
			return nil
		})
	default:
		return nil, fmt.Errorf("%w: %s (want .csv or .jsonl)", ErrUnknownFormat, path)
	}
	if err != nil {
		return nil, err
	}
	if itemDir != "" {
		if err := loadItems(p, itemDir, d); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func loadItems(p *progressReader, dir string, d *Data) error {
	if path := filepath.Join(dir, "items.jsonl"); size(path) > 0 {
		return eachLine(p, path, func(_ int, line string) error {
			var it event.Item
			if err := json.Unmarshal([]byte(line), &it); err != nil {
				return err
			}
			d.Items = append(d.Items, it)
			return nil
		})
	}
	if path := filepath.Join(dir, "items.csv"); size(path) > 0 {
		return eachCSV(p, path, func(rec map[string]string) error {
			d.Items = append(d.Items, event.Item{ID: rec["item_id"], Title: rec["title"], Categories: genres(rec["categories"])})
			return nil
		})
	}
	return nil
}
