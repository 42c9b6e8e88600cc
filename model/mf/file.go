package mf

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/snapshot"
)

// fileMagic names the layout; version 2 added each user's start (the
// events retention had evicted when training read their history), without
// which a loaded model re-solves every user with evictions. Version 1 files
// are still read (starts unknown: 0).
const (
	fileMagic   = "streamrec-mf-2"
	fileMagicV1 = "streamrec-mf-1"
)

// Write saves t to w, naming users and items by their external ids so that
// the file can be served by any engine that knows them.
func (t *Trained) Write(w io.Writer, userName, itemName func(int32) string) error {
	c := t.Model.Config()
	enc := snapshot.NewEncoder(w)
	enc.String(fileMagic)
	enc.Uint(uint64(c.Factors))
	enc.Float64(float64(c.Lambda))
	enc.Float64(float64(c.Alpha))
	enc.Uint(uint64(c.Iterations))
	enc.Uint(uint64(c.CGSteps))
	enc.Uint(t.Seq)
	enc.Uint(uint64(t.Events))
	enc.Uint(uint64(t.At.UnixNano()))
	enc.Uint(uint64(t.Took))
	nu, ni := t.Model.NumUsers(), t.Model.NumItems()
	enc.Uint(uint64(nu))
	for u := range nu {
		enc.String(userName(int32(u)))
	}
	versions := make([]uint32, nu)
	copy(versions, t.Versions)
	enc.Slice(versions, nu)
	starts := make([]uint32, nu)
	copy(starts, t.Starts)
	enc.Slice(starts, nu)
	enc.Uint(uint64(ni))
	for i := range ni {
		enc.String(itemName(int32(i)))
	}
	has := make([]uint8, ni)
	for i, ok := range t.HasData[:ni] {
		if ok {
			has[i] = 1
		}
	}
	enc.Slice(has, ni)
	enc.Slice(t.Model.Users, len(t.Model.Users))
	enc.Slice(t.Model.Items, len(t.Model.Items))
	return enc.Flush()
}

// File is a saved model as read back: factors under external ids.
type File struct {
	Config   als.Config
	Seq      uint64
	Events   int
	At       time.Time
	Took     time.Duration
	Users    []string
	Versions []uint32
	Starts   []uint32 // nil in a version 1 file
	Items    []string
	HasData  []uint8
	UserF    []float32
	ItemF    []float32
}

// ReadFile reads a model of size bytes written by Trained.Write; damaged
// input is an error wrapping snapshot.ErrCorrupt.
func ReadFile(r io.Reader, size int64) (*File, error) {
	d := snapshot.NewDecoder(r, size)
	magic := d.String()
	if d.Err() == nil && magic != fileMagic && magic != fileMagicV1 {
		return nil, fmt.Errorf("%w: not a streamrec mf model", snapshot.ErrCorrupt)
	}
	f := &File{}
	f.Config.Factors = int(d.Uint())
	f.Config.Lambda = float32(d.Float64())
	f.Config.Alpha = float32(d.Float64())
	f.Config.Iterations = int(d.Uint())
	f.Config.CGSteps = int(d.Uint())
	f.Seq = d.Uint()
	f.Events = int(d.Uint())
	f.At = time.Unix(0, int64(d.Uint()))
	f.Took = time.Duration(d.Uint())
	f.Users = readNames(d)
	f.Versions = snapshot.Uint32s(d)
	if magic == fileMagic {
		f.Starts = snapshot.Uint32s(d)
	}
	f.Items = readNames(d)
	f.HasData = snapshot.Uint8s(d)
	f.UserF = snapshot.Float32s(d)
	f.ItemF = snapshot.Float32s(d)
	if err := d.Err(); err != nil {
		return nil, err
	}
	k := f.Config.Factors
	d.Check(k > 0 && k <= 1024 && f.Config.Iterations > 0 && f.Config.CGSteps > 0, "configuration")
	d.Check(len(f.Versions) == len(f.Users) && len(f.HasData) == len(f.Items), "table sizes")
	d.Check(f.Starts == nil || len(f.Starts) == len(f.Users), "user starts")
	d.Check(len(f.UserF) == len(f.Users)*k && len(f.ItemF) == len(f.Items)*k, "factor sizes")
	if err := d.Err(); err != nil {
		return nil, err
	}
	for _, v := range [][]float32{f.UserF, f.ItemF} {
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("%w: factor is not a finite number", snapshot.ErrCorrupt)
			}
		}
	}
	return f, nil
}

func readNames(d *snapshot.Decoder) []string {
	n := d.Len(1)
	out := make([]string, 0, n)
	for range n {
		s := d.String()
		if d.Err() != nil {
			break
		}
		out = append(out, s)
	}
	return out
}

// Trained lays the file's factors out by the dense ids of an engine with
// nUsers users and nItems items (userID and itemID translate names; names
// the engine does not know are dropped), ready to Install.
func (f *File) Trained(ctx context.Context, cfg Config, userID, itemID func(string) (int32, bool), nUsers, nItems int) (*Trained, error) {
	cfg.fill()
	k := f.Config.Factors
	users := make([]float32, nUsers*k)
	items := make([]float32, nItems*k)
	t := &Trained{Versions: make([]uint32, nUsers), Starts: make([]uint32, nUsers), HasData: make([]bool, nItems), Seq: f.Seq, Events: f.Events, At: f.At, Took: f.Took}
	for i, name := range f.Items {
		if it, ok := itemID(name); ok && int(it) < nItems && f.HasData[i] != 0 {
			copy(items[int(it)*k:], f.ItemF[i*k:(i+1)*k])
			t.HasData[it] = true
		}
	}
	for i, name := range f.Users {
		if u, ok := userID(name); ok && int(u) < nUsers {
			copy(users[int(u)*k:], f.UserF[i*k:(i+1)*k])
			t.Versions[u] = f.Versions[i]
			if f.Starts != nil {
				t.Starts[u] = f.Starts[i]
			}
		}
	}
	m, err := als.NewModel(f.Config, users, items)
	if err != nil {
		return nil, err
	}
	t.Model = m
	big := cfg.ANNThreshold > 0 && nItems >= cfg.ANNThreshold
	if err := t.finish(ctx, cfg, big); err != nil {
		return nil, err
	}
	return t, nil
}
