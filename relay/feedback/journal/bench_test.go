package journal_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/feedback/feedbacktest"
	"github.com/mjrelay/mjrelay/relay/feedback/journal"
)

// BenchmarkAdd measures what a webhook request with 10 reportable events
// costs the outbox (one write and one fdatasync), and Finish (one each).
func BenchmarkAdd(b *testing.B) {
	j, err := journal.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		items := make([]feedback.Item, 10)
		for k := range items {
			items[k] = feedbacktest.Item(fmt.Sprintf("m%d", i), fmt.Sprintf("r%d@x.org", k))
		}
		if _, err := j.Add(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
}
