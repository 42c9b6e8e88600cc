package shared

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka starts an in-process Kafka cluster for a test (franz-go's kfake):
// 3 brokers whose groups take sessions from 500 ms, with opts on top,
// closed when the test ends.
func Kafka(tb testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	tb.Helper()
	kc, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3), kfake.GroupMinSessionTimeout(500 * time.Millisecond)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(kc.Close)
	return kc
}
