package mf

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/snapshot"
)

// TestFileKeepsStarts: a saved model remembers where each user's trained
// history started (the events retention had evicted), so that a loaded
// model serves the trained vectors of users with evictions as they were
// instead of re-solving them (the conformance suite's snapshot round trip
// under retention found the loaded model answering otherwise). A version 1
// file, without starts, still reads.
func TestFileKeepsStarts(t *testing.T) {
	const users, items = 4, 6
	var entries []als.Entry
	hist := make([][]history.Entry, users)
	for u := range int32(users) {
		for k := range int32(3) {
			it := (u + 2*k) % items
			entries = append(entries, als.Entry{User: u, Item: it, Weight: 1})
			hist[u] = append(hist[u], history.Entry{Item: it, Weight: 1})
		}
	}
	// Users 1 and 3 had 2 and 5 events evicted before training read them.
	starts := []uint32{0, 2, 0, 5}
	versions := make([]uint32, users)
	for u := range versions {
		versions[u] = starts[u] + 3
	}
	cfg := Config{ALS: als.Config{Factors: 4, Lambda: 1, Alpha: 1, Iterations: 3, CGSteps: 3, Seed: 1, Workers: 1}, ANNThreshold: -1}
	tr, err := Train(context.Background(), Data{Users: users, Items: items, Entries: entries, Versions: versions, Starts: starts}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	name := func(p string) func(int32) string { return func(i int32) string { return fmt.Sprint(p, i) } }
	if err := tr.Write(&buf, name("u"), name("i")); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Starts, starts) {
		t.Fatalf("file starts %v, want %v", f.Starts, starts)
	}
	id := func(p string) func(string) (int32, bool) {
		return func(s string) (int32, bool) {
			var i int32
			_, err := fmt.Sscanf(s, p+"%d", &i)
			return i, err == nil
		}
	}
	loaded, err := f.Trained(context.Background(), cfg, id("u"), id("i"), users, items)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(t *Trained) *Model {
		m := New(cfg)
		m.Install(t, users, func(u int32) ([]history.Entry, uint32) { return hist[u], starts[u] })
		return m
	}
	orig, back := serve(tr), serve(loaded)
	all := make([]int32, items)
	for i := range all {
		all[i] = int32(i)
	}
	for u := range int32(users) {
		a := orig.ScoreItems(u, hist[u], starts[u], all, nil)
		b := back.ScoreItems(u, hist[u], starts[u], all, nil)
		if !slices.Equal(a, b) {
			t.Errorf("user %d: loaded model scores %v, want %v", u, b, a)
		}
	}
	if n := back.FoldIns(); n != 0 {
		t.Errorf("the loaded model folded in %d users whose history had not changed", n)
	}

	// Version 1: the same layout without starts.
	v1 := rewriteV1(t, buf.Bytes(), users)
	f1, err := ReadFile(bytes.NewReader(v1), int64(len(v1)))
	if err != nil {
		t.Fatalf("version 1 file: %v", err)
	}
	if f1.Starts != nil || !slices.Equal(f1.Versions, versions) || !slices.Equal(f1.UserF, f.UserF) {
		t.Fatalf("version 1 file read as starts %v, versions %v", f1.Starts, f1.Versions)
	}
}

// rewriteV1 re-encodes a version 2 file of users users as version 1.
func rewriteV1(t *testing.T, b []byte, users int) []byte {
	f, err := ReadFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	e := snapshot.NewEncoder(&out)
	e.String(fileMagicV1)
	e.Uint(uint64(f.Config.Factors))
	e.Float64(float64(f.Config.Lambda))
	e.Float64(float64(f.Config.Alpha))
	e.Uint(uint64(f.Config.Iterations))
	e.Uint(uint64(f.Config.CGSteps))
	e.Uint(f.Seq)
	e.Uint(uint64(f.Events))
	e.Uint(uint64(f.At.UnixNano()))
	e.Uint(uint64(f.Took))
	e.Uint(uint64(users))
	for _, s := range f.Users {
		e.String(s)
	}
	e.Slice(f.Versions, len(f.Versions))
	e.Uint(uint64(len(f.Items)))
	for _, s := range f.Items {
		e.String(s)
	}
	e.Slice(f.HasData, len(f.HasData))
	e.Slice(f.UserF, len(f.UserF))
	e.Slice(f.ItemF, len(f.ItemF))
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
