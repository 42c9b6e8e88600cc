// Package dataset reads interaction data sets from disk: the MovieLens
// formats (ml-100k, ml-1m, ml-latest), the e-commerce logs of Taobao
// (UserBehavior), YOOCHOOSE (RecSys Challenge 2015, raw or as session-rec
// prepared it) and OTTO, and generic CSV or JSON-lines files of events and
// items. It only parses; validation and weighting are the pipeline's job.
//
// Invariant: Load returns events sorted by time (stable: ties keep file
// order), so a replay of a data set follows its own clock.
package dataset

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
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

// Formats lists what Load understands (docs/CONFIGURATION.md, "Import
// formats", gives the column mappings).
const Formats = `a directory holding
  ml-100k (u.data, u.item), ml-1m (ratings.dat, movies.dat) or ml-latest (ratings.csv, movies.csv),
  or events.csv / events.jsonl (with optional items.csv / items.jsonl),
or a file, or a directory whose data files all share one of these formats:
  events CSV      header naming user_id, item_id, type (optional value, timestamp, event_id)
  events JSONL    the API's event objects, one a line
  taobao          UserBehavior.csv: no header; user,item,category,behavior,timestamp
                  (pv→view, fav→favorite, cart→cart, buy→purchase; Unix seconds)
  session-rec     tab-separated, header SessionId, ItemId, Time (Unix seconds): each row a click,
                  the session stands in for the user (e.g. yoochoose-clicks-100k)
  yoochoose       RecSys 2015 .dat, no header: session,timestamp,item,category (a click) or
                  session,timestamp,item,price,quantity (a purchase)
  otto            JSON lines {"session":N,"events":[{"aid":A,"ts":ms,"type":"clicks|carts|orders"}]}
                  (clicks→click, carts→cart, orders→purchase; the session is the user)`

// ErrUnknownFormat is returned when nothing at the path is a known format.
var ErrUnknownFormat = errors.New("dataset: no known format")

// Progress is told how many bytes were read so far, and the total.
type Progress func(done, total int64)

// Options configure LoadContext.
type Options struct {
	Progress Progress
	// SourceIDs gives every event without an event_id one derived from its
	// place in the source: "FILE@HASH:LINE" (HASH: of the file's first
	// 4 KiB, so two different files of the same name differ; OTTO adds
	// ".INDEX" within the session's line). A second import of the same
	// file then yields the same ids, and the store's ids recognise what an
	// interrupted run already stored.
	SourceIDs bool
}

// Load reads the data set at path (a directory or a file).
func Load(path string, progress Progress) (*Data, error) {
	return LoadContext(context.Background(), path, Options{Progress: progress})
}

// Detect names the format Load would read at path, reading only the first
// line of its files: an unknown format or a missing path is an error before
// any data is read.
func Detect(path string) (string, error) {
	pl, err := planFor(path)
	if err != nil {
		return "", err
	}
	return pl.format, nil
}

// LoadContext is Load that stops, with ctx's error, when ctx is done.
func LoadContext(ctx context.Context, path string, opt Options) (*Data, error) {
	pl, err := planFor(path)
	if err != nil {
		return nil, err
	}
	l := &loader{p: &progressReader{ctx: ctx, report: opt.Progress, total: size(pl.files...)}, ids: opt.SourceIDs}
	d, err := pl.load(l)
	if err != nil {
		return nil, err
	}
	d.Format = pl.format
	for _, ev := range d.Events {
		if ev.Timestamp == nil {
			return d, nil // keep file order
		}
	}
	slices.SortStableFunc(d.Events, func(a, b event.Input) int { return a.Timestamp.Compare(b.Timestamp.Time) })
	return d, nil
}

// plan is what Load will read: the format, the files (for the progress
// total) and the reader.
type plan struct {
	format string
	files  []string
	load   func(*loader) (*Data, error)
}

func planFor(path string) (*plan, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if !st.IsDir() {
		f, err := sniff(path)
		if err != nil {
			return nil, err
		}
		if f == "" {
			return nil, fmt.Errorf("%w: %s (want %s)", ErrUnknownFormat, path, Formats)
		}
		return filesPlan(f, []string{path}, ""), nil
	}
	in := func(name string) string { return filepath.Join(path, name) }
	exists := func(name string) bool {
		_, err := os.Stat(in(name))
		return err == nil
	}
	switch {
	case exists("u.data"):
		return &plan{"ml-100k", []string{in("u.data"), in("u.item")}, func(l *loader) (*Data, error) { return l.loadML100K(path) }}, nil
	case exists("ratings.dat"):
		return &plan{"ml-1m", []string{in("ratings.dat"), in("movies.dat")}, func(l *loader) (*Data, error) { return l.loadML1M(path) }}, nil
	case exists("ratings.csv"):
		return &plan{"ml-latest", []string{in("ratings.csv"), in("movies.csv"), in("tags.csv")}, func(l *loader) (*Data, error) { return l.loadMLLatest(path) }}, nil
	case exists("events.jsonl"):
		return filesPlan(formatEventsJSONL, []string{in("events.jsonl")}, path), nil
	case exists("events.csv"):
		return filesPlan(formatEventsCSV, []string{in("events.csv")}, path), nil
	}
	// A directory of data files that all share one format.
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var files []string
	format := ""
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || !dataExt[strings.ToLower(filepath.Ext(name))] {
			continue
		}
		f, err := sniff(in(name))
		if err != nil {
			return nil, err
		}
		if f == "" {
			continue
		}
		if format != "" && f != format {
			return nil, fmt.Errorf("dataset: %s mixes formats (%s is %s, %s is %s): import one file at a time", path, filepath.Base(files[0]), format, name, f)
		}
		format = f
		files = append(files, in(name))
	}
	if format == "" {
		return nil, fmt.Errorf("%w in %s: expected %s", ErrUnknownFormat, path, Formats)
	}
	return filesPlan(format, files, ""), nil
}

// dataExt are the file name extensions a directory's data files may have.
var dataExt = map[string]bool{".csv": true, ".tsv": true, ".txt": true, ".dat": true, ".jsonl": true, ".ndjson": true}

// Format names of the one-file-per-kind formats.
const (
	formatEventsCSV   = "events"
	formatEventsJSONL = "events-jsonl"
	formatTaobao      = "taobao"
	formatSessionRec  = "session-rec"
	formatYoochoose   = "yoochoose"
	formatOtto        = "otto"
)

// filesPlan reads every file in turn with the format's reader, then
// items.csv / items.jsonl from itemDir when given.
func filesPlan(format string, files []string, itemDir string) *plan {
	all := files
	if itemDir != "" {
		all = append(slices.Clip(files), filepath.Join(itemDir, "items.jsonl"), filepath.Join(itemDir, "items.csv"))
	}
	return &plan{format: displayFormat(format), files: all, load: func(l *loader) (*Data, error) {
		d := &Data{}
		read := map[string]func(string, *Data) error{
			formatEventsCSV:   l.eventsCSV,
			formatEventsJSONL: l.eventsJSONL,
			formatTaobao:      l.taobao,
			formatSessionRec:  l.sessionRec,
			formatYoochoose:   l.yoochoose,
			formatOtto:        l.otto,
		}[format]
		for _, f := range files {
			if err := read(f, d); err != nil {
				return nil, err
			}
		}
		if itemDir != "" {
			if err := l.loadItems(itemDir, d); err != nil {
				return nil, err
			}
		}
		return d, nil
	}}
}

func displayFormat(f string) string {
	if f == formatEventsJSONL {
		return formatEventsCSV // both were always reported as "events"
	}
	return f
}

// sniff names the format of one file from its first non-empty line, or ""
// when it is none of the formats Load reads.
func sniff(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	line := ""
	for sc.Scan() {
		if line = strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff")); line != "" {
			break
		}
	}
	if err := sc.Err(); err != nil && line == "" {
		return "", fmt.Errorf("dataset: read %s: %w", path, err)
	}
	ext := strings.ToLower(filepath.Ext(path))
	switch {
	case line == "":
		// An empty file: its name says what it would hold.
		switch ext {
		case ".csv":
			return formatEventsCSV, nil
		case ".jsonl", ".ndjson":
			return formatEventsJSONL, nil
		}
		return "", nil
	case strings.HasPrefix(line, "{"):
		var keys map[string]json.RawMessage
		if json.Unmarshal([]byte(line), &keys) == nil {
			if _, ok := keys["events"]; ok {
				if _, ok := keys["session"]; ok {
					return formatOtto, nil
				}
			}
		}
		if ext == ".jsonl" || ext == ".ndjson" {
			return formatEventsJSONL, nil // a broken line is reported by the reader
		}
		if _, ok := keys["user_id"]; ok {
			return formatEventsJSONL, nil
		}
		return "", nil
	case strings.Contains(line, "\t"):
		if _, err := sessionRecColumns(strings.Split(line, "\t")); err == nil {
			return formatSessionRec, nil
		}
		return "", nil
	}
	fields := strings.Split(line, ",")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	switch {
	case slices.Contains(fields, "user_id") && slices.Contains(fields, "item_id"):
		return formatEventsCSV, nil
	case len(fields) == 5 && taobaoTypes[fields[3]] != "" && isInt(fields[4]):
		return formatTaobao, nil
	case (len(fields) == 4 || len(fields) == 5) && isRFC3339(fields[1]):
		return formatYoochoose, nil
	case ext == ".csv":
		return formatEventsCSV, nil // a header naming other columns is reported by the reader
	}
	return "", nil
}

func isInt(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

func isRFC3339(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
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
	ctx    context.Context
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
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.report != nil {
		p.report(p.done, max(p.total, p.done))
	}
	return n, err
}

// loader reads the files of one data set.
type loader struct {
	p   *progressReader
	ids bool
}

// open opens a data file and returns the prefix of the event ids derived
// from it ("NAME@HASH", HASH of its first 4 KiB).
func (l *loader) open(path string) (*os.File, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("dataset: %w", err)
	}
	if !l.ids {
		return f, "", nil
	}
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		f.Close()
		return nil, "", fmt.Errorf("dataset: read %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("dataset: %w", err)
	}
	sum := sha256.Sum256(head[:n])
	return f, filepath.Base(path) + "@" + hex.EncodeToString(sum[:4]), nil
}

// sourceID fills in's event_id from its place in the source when asked to
// and the source gave none.
func (l *loader) sourceID(in *event.Input, prefix string, line int) {
	if l.ids && in.EventID == "" {
		in.EventID = prefix + ":" + strconv.Itoa(line)
	}
}

// eachLine calls fn for every line of the file (without the newline), with
// the prefix of ids derived from the file.
func (l *loader) eachLine(path string, fn func(prefix string, lineNo int, line string) error) error {
	f, prefix, err := l.open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(l.p.wrap(f))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" {
			continue
		}
		if err := fn(prefix, n, line); err != nil {
			return fmt.Errorf("dataset: %s line %d: %w", filepath.Base(path), n, err)
		}
	}
	if err := sc.Err(); err != nil {
		if ctxErr := l.p.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("dataset: read %s: %w", path, err)
	}
	return nil
}

// eachCSV calls fn for each row of a CSV file with a header, as a map from
// column name to value, with the row's number (the header is row 1).
func (l *loader) eachCSV(path string, fn func(prefix string, row int, rec map[string]string) error) error {
	f, prefix, err := l.open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(l.p.wrap(bufio.NewReader(f)))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		if ctxErr := l.p.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
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
			if ctxErr := l.p.ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return fmt.Errorf("dataset: %s: %w", filepath.Base(path), err)
		}
		clear(rec)
		for i, v := range row {
			if i < len(header) {
				rec[header[i]] = v
			}
		}
		if err := fn(prefix, line, rec); err != nil {
			return fmt.Errorf("dataset: %s row %d: %w", filepath.Base(path), line, err)
		}
	}
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

func (l *loader) loadML100K(dir string) (*Data, error) {
	d := &Data{}
	err := l.eachLine(filepath.Join(dir, "u.data"), func(prefix string, n int, line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return fmt.Errorf("want 4 tab-separated fields, got %d", len(f))
		}
		ev, err := rating(f[0], f[1], f[2], f[3])
		l.sourceID(&ev, prefix, n)
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
	err = l.eachLine(itemPath, func(_ string, _ int, line string) error {
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

func (l *loader) loadML1M(dir string) (*Data, error) {
	d := &Data{}
	err := l.eachLine(filepath.Join(dir, "ratings.dat"), func(prefix string, n int, line string) error {
		f := strings.Split(line, "::")
		if len(f) != 4 {
			return fmt.Errorf("want 4 '::'-separated fields, got %d", len(f))
		}
		ev, err := rating(f[0], f[1], f[2], f[3])
		l.sourceID(&ev, prefix, n)
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
	err = l.eachLine(moviePath, func(_ string, _ int, line string) error {
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

func (l *loader) loadMLLatest(dir string) (*Data, error) {
	d := &Data{}
	err := l.eachCSV(filepath.Join(dir, "ratings.csv"), func(prefix string, row int, rec map[string]string) error {
		ev, err := rating(rec["userId"], rec["movieId"], rec["rating"], rec["timestamp"])
		l.sourceID(&ev, prefix, row)
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
	// tags.csv, when there, adds every tag a movie was ever given to its
	// text (whenever it was applied: the catalogue is put before the
	// ratings, so a tag applied later is known from the start).
	tags := map[string][]string{}
	if tagPath := filepath.Join(dir, "tags.csv"); fileExists(tagPath) {
		err = l.eachCSV(tagPath, func(_ string, _ int, rec map[string]string) error {
			id, tag := rec["movieId"], strings.TrimSpace(rec["tag"])
			if tag != "" && !slices.Contains(tags[id], tag) {
				tags[id] = append(tags[id], tag)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	err = l.eachCSV(moviePath, func(_ string, _ int, rec map[string]string) error {
		id := rec["movieId"]
		d.Items = append(d.Items, event.Item{ID: id, Title: rec["title"], Categories: genres(rec["genres"]), Tags: tags[id]})
		return nil
	})
	return d, err
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// eventsCSV reads a CSV events file (columns user_id, item_id, type, value,
// timestamp, event_id).
func (l *loader) eventsCSV(path string, d *Data) error {
	return l.eachCSV(path, func(prefix string, row int, rec map[string]string) error {
		if row == 2 {
			if _, ok := rec["user_id"]; !ok {
				return errors.New("no user_id column: an events CSV has a header naming user_id, item_id, type (and optionally value, timestamp, event_id)")
			}
		}
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
		l.sourceID(&in, prefix, row)
		d.Events = append(d.Events, in)
		return nil
	})
}

// eventsJSONL reads a JSON-lines events file (the API's event objects).
func (l *loader) eventsJSONL(path string, d *Data) error {
	return l.eachLine(path, func(prefix string, n int, line string) error {
		var in event.Input
		if err := json.Unmarshal([]byte(line), &in); err != nil {
			return err
		}
		l.sourceID(&in, prefix, n)
		d.Events = append(d.Events, in)
		return nil
	})
}

func (l *loader) loadItems(dir string, d *Data) error {
	if path := filepath.Join(dir, "items.jsonl"); size(path) > 0 {
		return l.eachLine(path, func(_ string, _ int, line string) error {
			var it event.Item
			if err := json.Unmarshal([]byte(line), &it); err != nil {
				return err
			}
			d.Items = append(d.Items, it)
			return nil
		})
	}
	if path := filepath.Join(dir, "items.csv"); size(path) > 0 {
		return l.eachCSV(path, func(_ string, _ int, rec map[string]string) error {
			d.Items = append(d.Items, event.Item{ID: rec["item_id"], Title: rec["title"], Categories: genres(rec["categories"])})
			return nil
		})
	}
	return nil
}
