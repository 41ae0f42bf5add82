// Package odoo is the relay's outbound integration with Odoo 17/18: an
// XML-RPC client (relay/odoo/xmlrpc) that logs in the way odoo-mailgate
// does (/xmlrpc/2/common authenticate with an API key) and calls
// /xmlrpc/2/object execute_kw to hand Odoo a delivery status notification
// (mail.thread message_process, built by DSN in the one shape Odoo
// recognises as a bounce), to blacklist an address (mail.blacklist) and to
// check the login's rights; and OneClick, the RFC 8058 POST to the
// one-click unsubscribe URL Odoo's mass mailings carry. Every error is an
// *Error whose Class tells the caller whether to retry, wait for an
// administrator, or give up on that one report.
package odoo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mjrelay/mjrelay/relay/odoo/xmlrpc"
)

// Options say which Odoo to talk to and as whom.
type Options struct {
	// URL is Odoo's base URL ("https://erp.example.com").
	URL    string
	DB     string
	Login  string
	APIKey string // the API key (or password) of Login; never logged
	// HTTP is the client for the calls (default: 60 s timeout).
	HTTP *http.Client
}

// Client calls one Odoo database. It is safe for concurrent use; it logs
// in once and again when Odoo says the session's credentials are refused.
type Client struct {
	o   Options
	mu  sync.Mutex
	uid int64
}

// New returns a client; it does not connect.
func New(o Options) *Client {
	o.URL = strings.TrimRight(o.URL, "/")
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{o: o}
}

// Class says what an error means for the report that met it.
type Class int

const (
	// Temporary: Odoo is unreachable, overloaded or failed inside; the
	// same call may work later.
	Temporary Class = iota
	// Setup: the URL, database, login, API key or the login's rights are
	// wrong; nothing will work until an administrator fixes them.
	Setup
	// Rejected: Odoo refused this one report for good.
	Rejected
)

func (c Class) String() string {
	return [...]string{"temporary", "setup", "rejected"}[c]
}

// Error is what the client's calls return.
type Error struct {
	Class Class
	Op    string // what was being done: "authenticate", "message_process"...
	Err   error
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ClassOf is err's Class (Temporary for errors that are not *Error).
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Temporary
}

// Fault codes of Odoo's /xmlrpc/2 (odoo/addons/base/controllers/rpc.py).
const (
	faultApplication = 1 // any other exception: the traceback
	faultWarning     = 2 // UserError, ValidationError, MissingError
	faultDenied      = 3 // AccessDenied: login or key refused
	faultAccess      = 4 // AccessError: the user lacks a right
)

// classify turns a call's error into an *Error.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var f *xmlrpc.Fault
	var h *xmlrpc.HTTPError
	switch {
	case errors.As(err, &f):
		switch f.Code {
		case faultDenied:
			return &Error{Setup, op, fmt.Errorf("Odoo refused the login or API key (AccessDenied): %w", err)}
		case faultAccess:
			return &Error{Setup, op, fmt.Errorf("the Odoo user lacks a right (AccessError): %w", err)}
		case faultWarning:
			return &Error{Rejected, op, err}
		}
		if s := f.String; strings.Contains(s, "database") && strings.Contains(s, "does not exist") ||
			strings.Contains(s, "KeyError: 'mail.") {
			return &Error{Setup, op, err}
		}
		return &Error{Temporary, op, err}
	case errors.As(err, &h):
		switch {
		case h.Status >= 500, h.Status == http.StatusTooManyRequests, h.Status == http.StatusRequestTimeout:
			return &Error{Temporary, op, err}
		}
		return &Error{Setup, op, fmt.Errorf("%w (is odoo.url Odoo's base URL?)", err)}
	case errors.Is(err, xmlrpc.ErrSyntax):
		return &Error{Setup, op, fmt.Errorf("the answer is not Odoo's XML-RPC (is odoo.url Odoo's base URL?): %w", err)}
	}
	return &Error{Temporary, op, err}
}

// Version asks /xmlrpc/2/common for Odoo's version (no login needed).
func (c *Client) Version(ctx context.Context) (string, error) {
	v, err := xmlrpc.Call(ctx, c.o.HTTP, c.o.URL+"/xmlrpc/2/common", "version")
	if err != nil {
		return "", classify("version", err)
	}
	m, _ := v.(map[string]any)
	s, _ := m["server_version"].(string)
	if s == "" {
		return "", &Error{Setup, "version", errors.New("the answer has no server_version: is odoo.url an Odoo server?")}
	}
	return s, nil
}

// Authenticate logs in (authenticate(db, login, key, {})) and returns the
// user id; Odoo answers False for a wrong login or key (a Setup error).
func (c *Client) Authenticate(ctx context.Context) (int64, error) {
	v, err := xmlrpc.Call(ctx, c.o.HTTP, c.o.URL+"/xmlrpc/2/common", "authenticate", c.o.DB, c.o.Login, c.o.APIKey, map[string]any{})
	if err != nil {
		return 0, classify("authenticate", err)
	}
	uid, ok := v.(int64)
	if !ok || uid <= 0 {
		return 0, &Error{Setup, "authenticate", fmt.Errorf("Odoo refused the login %q with this API key on database %q (authenticate returned %v)", c.o.Login, c.o.DB, v)}
	}
	c.mu.Lock()
	c.uid = uid
	c.mu.Unlock()
	return uid, nil
}

// Execute calls execute_kw(db, uid, key, model, method, args, kw), logging
// in first if needed, and once more if Odoo refuses the session's
// credentials (the key may have been replaced meanwhile).
func (c *Client) Execute(ctx context.Context, model, method string, args []any, kw map[string]any) (any, error) {
	if kw == nil {
		kw = map[string]any{}
	}
	for try := 0; ; try++ {
		c.mu.Lock()
		uid := c.uid
		c.mu.Unlock()
		if uid == 0 {
			var err error
			if uid, err = c.Authenticate(ctx); err != nil {
				return nil, err
			}
		}
		v, err := xmlrpc.Call(ctx, c.o.HTTP, c.o.URL+"/xmlrpc/2/object", "execute_kw",
			c.o.DB, uid, c.o.APIKey, model, method, args, kw)
		var f *xmlrpc.Fault
		if try == 0 && errors.As(err, &f) && f.Code == faultDenied {
			c.mu.Lock()
			c.uid = 0
			c.mu.Unlock()
			continue
		}
		return v, classify(model+" "+method, err)
	}
}

// ProcessMessage hands Odoo a raw message as odoo-mailgate does:
// mail.thread message_process(False, Binary(raw)). It returns Odoo's
// answer as text (the thread id, or False: a bounce routes nowhere).
func (c *Client) ProcessMessage(ctx context.Context, raw []byte) (string, error) {
	v, err := c.Execute(ctx, "mail.thread", "message_process", []any{false, raw}, nil)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("message_process returned %v", v), nil
}

// Blacklist adds email to mail.blacklist as Odoo's own _add does: a search
// that sees archived rows too (active_test False), then action_unarchive
// on the row found or create; then reason is posted on it as a note.
func (c *Client) Blacklist(ctx context.Context, email, reason string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	v, err := c.Execute(ctx, "mail.blacklist", "search", []any{[]any{[]any{"email", "=", email}}},
		map[string]any{"context": map[string]any{"active_test": false}})
	if err != nil {
		return "", err
	}
	ids, _ := v.([]any)
	var id int64
	answer := ""
	if len(ids) > 0 {
		id, _ = ids[0].(int64)
		if _, err := c.Execute(ctx, "mail.blacklist", "action_unarchive", []any{[]any{id}}, nil); err != nil {
			return "", err
		}
		answer = fmt.Sprintf("mail.blacklist %d (already listed; unarchived if it was archived)", id)
	} else {
		v, err := c.Execute(ctx, "mail.blacklist", "create", []any{map[string]any{"email": email}}, nil)
		if err != nil {
			return "", err
		}
		switch x := v.(type) {
		case int64:
			id = x
		case []any: // create of a list of values
			if len(x) > 0 {
				id, _ = x[0].(int64)
			}
		}
		answer = fmt.Sprintf("mail.blacklist %d created", id)
	}
	if id <= 0 {
		return "", &Error{Temporary, "mail.blacklist", fmt.Errorf("unexpected answer %v", v)}
	}
	if _, err := c.Execute(ctx, "mail.blacklist", "message_post", []any{[]any{id}},
		map[string]any{"body": reason, "subtype_xmlid": "mail.mt_note", "message_type": "comment"}); err != nil {
		return "", err
	}
	return answer + "; reason posted", nil
}

// CheckRights tells whether the login may do what the relay asks of it:
// create mail.message (message_process, for the mail it routes) and, when
// blacklist is true, create and write mail.blacklist. It asks
// check_access_rights, which changes nothing.
func (c *Client) CheckRights(ctx context.Context, blacklist bool) error {
	checks := [][2]string{{"mail.message", "create"}}
	if blacklist {
		checks = append(checks, [2]string{"mail.blacklist", "create"}, [2]string{"mail.blacklist", "write"})
	}
	var missing []string
	for _, ch := range checks {
		v, err := c.Execute(ctx, ch[0], "check_access_rights", []any{ch[1]}, map[string]any{"raise_exception": false})
		if err != nil {
			return err
		}
		if ok, _ := v.(bool); !ok {
			missing = append(missing, ch[1]+" on "+ch[0])
		}
	}
	if len(missing) > 0 {
		return &Error{Setup, "check_access_rights", fmt.Errorf("the Odoo user %q may not %s (give it the Settings → Administration rights, or a group with these access rights)",
			c.o.Login, strings.Join(missing, ", "))}
	}
	return nil
}
