package odootest

import (
	"fmt"
	"strings"

	"github.com/mjrelay/mjrelay/relay/odoo/xmlrpc"
)

// blacklist serves the mail.blacklist methods the relay uses, as Odoo 17/18
// do (mail/models/mail_blacklist.py), recording each call.
func (s *Server) blacklist(fn string, args []any, kw map[string]any, rights Rights) (any, *xmlrpc.Fault) {
	ctx, _ := kw["context"].(map[string]any)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Method: fn, Args: args, Kwargs: kw, Context: ctx})
	if !rights.Blacklist && fn != "search" {
		return nil, &xmlrpc.Fault{Code: 4, String: "You are not allowed to modify 'Mail Blacklist' (mail.blacklist) records."}
	}
	switch fn {
	case "search":
		dom, _ := firstArg(args).([]any)
		email, ok := emailDomain(dom)
		if !ok {
			return nil, &xmlrpc.Fault{Code: 1, String: "the relay searches [('email', '=', address)]"}
		}
		activeTest := true
		if v, ok := ctx["active_test"].(bool); ok {
			activeTest = v
		}
		ids := []any{}
		for _, r := range s.bl {
			if r.email == email && (r.active || !activeTest) {
				ids = append(ids, r.id)
			}
		}
		return ids, nil
	case "create":
		vals, _ := firstArg(args).(map[string]any)
		email, _ := vals["email"].(string)
		email = normalize(email)
		if email == "" {
			return nil, &xmlrpc.Fault{Code: 2, String: "Invalid email address"}
		}
		// Odoo's create returns the active row for a known address, and
		// does not see archived rows: creating one of those breaks the
		// unique constraint.
		for _, r := range s.bl {
			if r.email == email {
				if r.active {
					return r.id, nil
				}
				return nil, &xmlrpc.Fault{Code: 1, String: `psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint "mail_blacklist_unique_email"`}
			}
		}
		s.bl = append(s.bl, blRow{id: int64(len(s.bl) + 1), email: email, active: true})
		return int64(len(s.bl)), nil
	case "action_unarchive":
		for _, id := range ids(args) {
			if r := s.row(id); r != nil {
				r.active = true
			} else {
				return nil, &xmlrpc.Fault{Code: 2, String: fmt.Sprintf("MissingError: Record does not exist or has been deleted. (Record: mail.blacklist(%d,))", id)}
			}
		}
		return true, nil
	case "message_post":
		body, _ := kw["body"].(string)
		list := ids(args)
		if len(list) != 1 || body == "" {
			return nil, &xmlrpc.Fault{Code: 1, String: "ValueError: Expected singleton, with a body"}
		}
		r := s.row(list[0])
		if r == nil {
			return nil, &xmlrpc.Fault{Code: 2, String: "MissingError: Record does not exist or has been deleted."}
		}
		r.notes = append(r.notes, body)
		return int64(1000 + len(r.notes)), nil
	}
	return nil, &xmlrpc.Fault{Code: 1, String: fmt.Sprintf("AttributeError: type object 'mail.blacklist' has no attribute '%s'", fn)}
}

func (s *Server) row(id int64) *blRow {
	for i := range s.bl {
		if s.bl[i].id == id {
			return &s.bl[i]
		}
	}
	return nil
}

// emailDomain reads [['email', '=', x]].
func emailDomain(dom []any) (string, bool) {
	if len(dom) != 1 {
		return "", false
	}
	t, _ := dom[0].([]any)
	if len(t) != 3 || t[0] != "email" || t[1] != "=" {
		return "", false
	}
	e, ok := t[2].(string)
	return strings.ToLower(strings.TrimSpace(e)), ok
}

// ids reads the record ids of a method called on records: [[id, ...]].
func ids(args []any) []int64 {
	list, _ := firstArg(args).([]any)
	var out []int64
	for _, v := range list {
		if id, ok := v.(int64); ok {
			out = append(out, id)
		}
	}
	return out
}
