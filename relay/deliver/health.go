package deliver

import (
	"sync"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
)

// Cool-down of a failing transport: after failThreshold consecutive
// transport-level failures it is skipped for a cool-down that starts at
// min(30 s, retry_min) and doubles up to min(5 min, retry_max); when the
// cool-down ends, one attempt probes it again.
const (
	failThreshold = 3
	coolMin       = 30 * time.Second
	coolMax       = 5 * time.Minute
)

type health struct {
	min, max time.Duration
	mu       sync.Mutex
	fails    int
	until    time.Time // skipped until then
	cooldown time.Duration
	probing  bool
}

// available reports whether the transport may be used now; during a
// probe, only the prober uses it.
func (h *health) available(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fails < failThreshold {
		return true
	}
	if now.Before(h.until) || h.probing {
		return false
	}
	h.probing = true
	return true
}

// wait returns when the transport will next be tried.
func (h *health) wait() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.until
}

// observe updates the health from an attempt's result: a transport-level
// failure is every recipient failing temporarily (connection refused,
// TLS error, 4xx to MAIL or DATA, HTTP 5xx/429...).
func (h *health) observe(res mailjet.Result, now time.Time) (cooling bool) {
	failed := len(res.Rcpts) > 0 && !res.Unsupported
	for _, r := range res.Rcpts {
		if r.Status != mailjet.TempFail {
			failed = false
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.probing = false
	if !failed {
		h.fails, h.cooldown = 0, 0
		return false
	}
	h.fails++
	if h.fails >= failThreshold {
		h.cooldown = min(max(h.cooldown*2, h.min), h.max)
		h.until = now.Add(h.cooldown)
		return true
	}
	return false
}
