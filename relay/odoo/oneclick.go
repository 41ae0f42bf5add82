package odoo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// OneClick performs an RFC 8058 one-click unsubscription: a POST of the
// form body "List-Unsubscribe=One-Click" to the URL the message carried in
// List-Unsubscribe, which runs Odoo's own opt-out (the mailing list's
// opt-out, or its blacklist). A 4xx answer (an unknown mailing, a token
// that does not match) is Rejected; 5xx and network errors are Temporary.
func OneClick(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		return "", &Error{Rejected, "one-click unsubscribe", err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "mjrelay")
	resp, err := hc.Do(req)
	if err != nil {
		return "", &Error{Temporary, "one-click unsubscribe", err}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	answer := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	switch {
	case resp.StatusCode < 400:
		return answer, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return "", &Error{Temporary, "one-click unsubscribe", fmt.Errorf("%s", answer)}
	}
	return "", &Error{Rejected, "one-click unsubscribe", fmt.Errorf("%s", answer)}
}

// OneClick performs the one-click unsubscription with the client's HTTP
// client (and its timeout).
func (c *Client) OneClick(ctx context.Context, url string) (string, error) {
	return OneClick(ctx, c.o.HTTP, url)
}
