package store

import (
	"bytes"
	"compress/flate"
	"io"
	"runtime"
	"sync"

	"github.com/mjrelay/mjrelay/relay/store/mimeview"
)

// The stores keep raw messages deflated (compress/flate, best speed), in
// the same form, so that a migration copies them as they are.

// Deflate deflates the raw messages and counts their attachments, on all
// cores; out[i] is raw[i] deflated (nil when raw[i] is empty).
func Deflate(raw [][]byte) (out [][]byte, attachments []int) {
	out, attachments = make([][]byte, len(raw)), make([]int, len(raw))
	var todo []int
	for i, r := range raw {
		if len(r) > 0 {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return out, attachments
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(len(todo), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			var buf bytes.Buffer
			fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
			for i := range work {
				large := len(raw[i]) > 1<<20
				if large {
					// Sized for attachments (base64 deflates to about
					// 3/4), and handed over rather than copied.
					buf = bytes.Buffer{}
					buf.Grow(len(raw[i]) * 3 / 4)
				}
				buf.Reset()
				fw.Reset(&buf)
				fw.Write(raw[i])
				fw.Close()
				if large {
					out[i], buf = buf.Bytes(), bytes.Buffer{}
				} else {
					out[i] = bytes.Clone(buf.Bytes())
				}
				attachments[i] = mimeview.CountAttachments(raw[i])
			}
		})
	}
	for _, i := range todo {
		work <- i
	}
	close(work)
	wg.Wait()
	return out, attachments
}

// Inflate reads a raw message Deflate stored.
func Inflate(body []byte) io.Reader { return flate.NewReader(bytes.NewReader(body)) }
