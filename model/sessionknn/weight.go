package sessionknn

// DefaultWeight implements model.Weighted: the source's weight in the
// default blend, chosen by prequential replay of the first 60% of
// yoochoose-clicks-100k and ml-100k (docs/EVALUATION.md).
func (m *Model) DefaultWeight() float32 { return 0.5 }
