package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// postStream posts a webhook body that the test writes as it goes, and
// returns the writer and the response (ready once done is closed).
func (e *env) postStream(t testing.TB) (pw *io.PipeWriter, w *httptest.ResponseRecorder, done chan struct{}) {
	t.Helper()
	pr, pw := io.Pipe()
	r := httptest.NewRequest("POST", "/webhooks/mailjet", pr)
	r.RemoteAddr, r.Host = "203.0.113.5:443", "relay.example.com"
	r.SetBasicAuth("mailjet", hookPassword)
	w, done = httptest.NewRecorder(), make(chan struct{})
	go func() {
		defer close(done)
		e.h.ServeHTTP(w, r)
		pr.CloseWithError(io.ErrClosedPipe) // a writer still writing stops
	}()
	return pw, w, done
}

// events writes n events for the message id, each with a comment of pad
// bytes (Mailjet's bounce comments are the raw SMTP text).
func writeEvents(w io.Writer, first bool, n int, customID string, pad int) error {
	for i := range n {
		sep := ","
		if first && i == 0 {
			sep = "["
		}
		ev := mjEvent("open", customID, 288230376151711744, `"comment":"`+strings.Repeat("c", pad)+`"`)
		if _, err := io.WriteString(w, sep+ev); err != nil {
			return err
		}
	}
	return nil
}

// mjCount returns how many Mailjet events the store holds for id.
func (e *env) mjCount(t testing.TB, id string) int {
	t.Helper()
	m, err := e.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return len(m.Events)
}

// waitMJ waits (30 s at most: a failure, not a timing check) until the
// store holds at least n Mailjet events for id, and returns how many.
func (e *env) waitMJ(t testing.TB, id string, n int) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got := e.mjCount(t, id); got >= n {
			return got
		}
	}
	t.Fatalf("the store did not get %d events while the body was still being sent (has %d)", n, e.mjCount(t, id))
	return 0
}

// TestWebhookStreamsInBatches: the store gets the events in batches of
// webhookBatch while the body is still arriving, not after it was read.
func TestWebhookStreamsInBatches(t *testing.T) {
	e := newEnv(t, withWebhook(t), withoutMailjetEvents)
	id := e.smp.IDs["invoice"]
	pw, w, done := e.postStream(t)
	if err := writeEvents(pw, true, 2*webhookBatch+200, id, 0); err != nil {
		t.Fatal(err)
	}
	if got := e.waitMJ(t, id, 2*webhookBatch); got != 2*webhookBatch {
		t.Fatalf("the store has %d events before the body ended, want the first %d batches (%d)", got, 2, 2*webhookBatch)
	}
	if err := writeEvents(pw, false, 300, id, 0); err != nil {
		t.Fatal(err)
	}
	io.WriteString(pw, "]")
	pw.Close()
	<-done
	var res map[string]int
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &res) != nil || res["accepted"] != 2*webhookBatch+500 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got := e.mjCount(t, id); got != 2*webhookBatch+500 {
		t.Errorf("store has %d events, want %d", got, 2*webhookBatch+500)
	}
}

// TestWebhookStoreUnavailable: a store that cannot take events gets 503,
// so that Mailjet sends them again; the rest of the body is not read.
func TestWebhookStoreUnavailable(t *testing.T) {
	for _, midway := range []bool{false, true} {
		t.Run(fmt.Sprint("closed midway ", midway), func(t *testing.T) {
			e := newEnv(t, withWebhook(t), withoutMailjetEvents)
			id := e.smp.IDs["invoice"]
			pw, w, done := e.postStream(t)
			wrote := make(chan error, 1)
			go func() {
				err := writeEvents(pw, true, webhookBatch+10, id, 0)
				if err == nil && midway {
					for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
						if m, _ := e.store.Get(context.Background(), id); m != nil && len(m.Events) >= webhookBatch {
							break // the first batch is in
						}
					}
					e.store.Close()
					err = writeEvents(pw, false, 100*webhookBatch, id, 0) // more than it will read
				}
				pw.Close()
				wrote <- err
			}()
			if !midway {
				e.store.Close()
			}
			<-done
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("%d %s, want 503", w.Code, w.Body)
			}
			if err := <-wrote; midway && err == nil {
				t.Error("the whole body was read after the store failed")
			}
		})
	}
}

// TestWebhookMemoryBounded: a 32 MB body of big events (each comment is
// clipped to webhook.MaxFieldBytes) grows the heap by a fraction of the body. The
// old handler kept every event, and each clipped field kept its whole
// original string. The GC runs at 10% here so that garbage does not blur
// what is kept.
func TestWebhookMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("32 MB body")
	}
	e := newEnv(t, withWebhook(t), withoutMailjetEvents)
	const pad, n = 16 << 10, 2000 // 32 MB
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	var w *httptest.ResponseRecorder
	grew := heapGrowth(func() {
		var pw *io.PipeWriter
		var done chan struct{}
		pw, w, done = e.postStream(t)
		go func() {
			err := writeEvents(pw, true, n, "not-ours", pad) // not joined: the store only counts them
			if err == nil {
				_, err = io.WriteString(pw, "]")
			}
			pw.CloseWithError(err)
		}()
		<-done
	})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), fmt.Sprintf(`"accepted": %d`, n)) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	body := uint64(n * pad)
	if grew > body/4 {
		t.Errorf("heap grew by %d MB for a %d MB body", grew>>20, body>>20)
	} else {
		t.Logf("heap grew by %.1f MB for a %d MB body", float64(grew)/(1<<20), body>>20)
	}
}

// BenchmarkWebhookLargeBody posts a 46 MB body of ordinary events (the
// size that took 800 MB before) and reports the peak heap growth.
func BenchmarkWebhookLargeBody(b *testing.B) {
	e := newEnv(b, withWebhook(b), withoutMailjetEvents)
	var sb strings.Builder
	writeEvents(&sb, true, 46<<20/480, "not-ours", 0)
	sb.WriteString("]")
	body := sb.String()
	b.SetBytes(int64(len(body)))
	var peakGrowth uint64
	b.ResetTimer()
	for range b.N {
		var w *httptest.ResponseRecorder
		grew := heapGrowth(func() {
			w = e.do(b, "POST", "/webhooks/mailjet", strings.NewReader(body), auth("mailjet", hookPassword),
				from("203.0.113.5:443"), host("relay.example.com"))
		})
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
		peakGrowth = max(peakGrowth, grew)
	}
	b.ReportMetric(float64(peakGrowth)/(1<<20), "peak-heap-MB")
}

// heapGrowth runs f and returns how far HeapInuse rose above where it was
// after a GC, sampled every 2 ms while f runs.
func heapGrowth(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}()
	f()
	close(stop)
	<-sampled
	return peak - base
}
