package eval

import (
	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/recommend"
)

// newDefault is an engine as the server's defaults assemble it.
func newDefault(tb *event.Table) *recommend.Engine {
	c := config.Default()
	return recommend.New(c.EngineConfig(tb))
}
