package recommend

import (
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/itemknn"
	"github.com/streamrec/streamrec/model/mf"
	"github.com/streamrec/streamrec/model/trending"
)

// The engine never names a model; these tests run it with the three the
// node assembles by default.
const (
	SourceItemKNN  = itemknn.Name
	SourceMF       = mf.Name
	SourceTrending = trending.Name
)

// testConfig is an engine configuration with the default models.
type testConfig struct {
	Table     *event.Table
	ItemKNN   itemknn.Config
	Trending  trending.Config
	MF        mf.Config
	Blend     map[string]float32
	Retention Retention
	Answers   int
}

func newTest(c testConfig) *Engine {
	if c.ItemKNN == (itemknn.Config{}) {
		c.ItemKNN = itemknn.DefaultConfig()
	}
	if c.Trending == (trending.Config{}) {
		c.Trending = trending.DefaultConfig()
	}
	if c.MF.ALS.Factors == 0 {
		c.MF = mf.DefaultConfig()
	}
	return New(Config{Table: c.Table, Blend: c.Blend, Retention: c.Retention, Answers: c.Answers, Models: []model.Model{
		itemknn.NewSource(c.ItemKNN), trending.NewSource(c.Trending), mf.NewSource(c.MF)}})
}

func (e *Engine) model(name string) model.Model {
	for _, m := range e.models {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

func (e *Engine) knn() *itemknn.Model    { return e.model(itemknn.Name).(*itemknn.Source).Model() }
func (e *Engine) trend() *trending.Model { return e.model(trending.Name).(*trending.Source).Model() }
func (e *Engine) mfm() *mf.Model         { return e.mf.Model() }
func (e *Engine) knnPairs() int          { return e.knn().Pairs() }
