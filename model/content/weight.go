package content

// DefaultWeight implements model.Weighted: the source's weight in the
// default blend, chosen by prequential replay of the first 60% of
// yoochoose-clicks-100k and ml-100k, and for content of taobao-userbehavior-head
// and ml-100k, whose items have text (docs/EVALUATION.md).
func (m *Model) DefaultWeight() float32 { return 0.3 }
