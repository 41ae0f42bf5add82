package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/store"
)

const logUsage = `usage: mjrelay log --config FILE [filters] [--json]
       mjrelay log --config FILE ID          one message with its timeline
       mjrelay log --config FILE --raw ID    the stored raw message

Searches the traffic store (data_dir/store.db) of a running or stopped relay.
Filters:
`

// runLog implements `mjrelay log`: the traffic store's list and detail
// from the terminal, with the filters of the web UI. Exit status: 0 (also
// when nothing matches), 1 when the store cannot be read or the message is
// not found, 2 for usage or configuration errors.
func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := configFlag("log", args, stderr)
	state := fs.String("state", "", "`STATES`, comma-separated: "+strings.Join(store.StateNames(), ", "))
	class := fs.String("class", "", "lane: transactional or bulk")
	feedback := fs.String("feedback", "", "`STATE` of the reports to Odoo: any, "+strings.Join(store.FeedbackStates, ", "))
	from := fs.String("from", "", "sender `ADDRESS` or domain (envelope or header From)")
	to := fs.String("to", "", "recipient `ADDRESS` or domain")
	q := fs.String("q", "", "search `TEXT`: subject, addresses, queue id, Message-Id, login, Mailjet id")
	since := fs.String("since", "", "received at or after `TIME` (2006-01-02 15:04, RFC 3339, or ago: 24h, 7d)")
	until := fs.String("until", "", "received before `TIME`")
	limit := fs.Int("limit", 50, "at most `N` messages (1-1000)")
	cursor := fs.String("cursor", "", "continue after a previous page (its \"next\")")
	asJSON := fs.Bool("json", false, "print JSON (the web API's documents)")
	raw := fs.Bool("raw", false, "print the stored raw message of ID")
	fs.Usage = func() {
		fmt.Fprint(stderr, logUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	id := ""
	if fs.NArg() > 0 { // flags may follow the id too
		rest := fs.Args()
		if err := fs.Parse(rest[1:]); err != nil {
			return 2
		}
		fs.Parse(append(rest[:1:1], fs.Args()...)) // leaves the id as Arg(0)
	}
	switch fs.NArg() {
	case 0:
		if *raw {
			fmt.Fprintln(stderr, "mjrelay log: --raw needs a message id")
			return 2
		}
	case 1:
		id = fs.Arg(0)
	default:
		fmt.Fprintf(stderr, "mjrelay log: unexpected argument %q\n", fs.Arg(1))
		return 2
	}
	now := time.Now()
	f := store.Filter{State: *state, Class: *class, From: *from, To: *to, Q: *q, Limit: *limit, Cursor: *cursor, Feedback: *feedback}
	var err error
	if f.Since, err = store.ParseTime(*since, now, time.Local); err == nil {
		f.Until, err = store.ParseTime(*until, now, time.Local)
	}
	if err == nil {
		err = store.CheckStates(f.State)
	}
	if err == nil {
		err = store.CheckFeedback(f.Feedback)
	}
	if err == nil && (f.Limit < 1 || f.Limit > 1000) {
		err = fmt.Errorf("--limit %d is not 1-1000", f.Limit)
	}
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay log:", err)
		return 2
	}
	cfg, _, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay log:", err)
		return 2
	}
	st, err := relay.ReadStore(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mjrelay log: %v (the relay creates the store when it runs)\n", err)
		return 1
	}
	defer st.Close()

	switch {
	case *raw:
		body, _, err := st.Raw(ctx, id)
		if err == nil {
			_, err = io.Copy(stdout, body)
		}
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("no raw message for %s (not stored, or pruned after store.keep_bodies)", id)
		}
		return logResult(stderr, err)
	case id != "":
		m, err := st.Get(ctx, id)
		if err == nil {
			if *asJSON {
				err = printJSON(stdout, m)
			} else {
				printMessage(stdout, m)
			}
		}
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("no message %s in the traffic store", id)
		}
		return logResult(stderr, err)
	}
	p, err := st.List(ctx, f)
	if err == nil {
		if *asJSON {
			err = printJSON(stdout, p)
		} else {
			printList(stdout, p)
		}
	}
	return logResult(stderr, err)
}

func logResult(stderr io.Writer, err error) int {
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay log:", err)
		return 1
	}
	return 0
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func printList(w io.Writer, p store.Page) {
	if len(p.Messages) == 0 {
		fmt.Fprintln(w, "No message matches.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVED\tSTATE\tLANE\tFROM\tTO\tSUBJECT\tID")
	for _, m := range p.Messages {
		from := m.HeaderFrom
		if from == "" {
			from = m.From
		}
		to := strings.Join(m.To, ",")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", localTime(m.ReceivedAt), m.State, dash(m.Class),
			cut(dash(from), 36), cut(dash(to), 36), cut(dash(m.Subject), 48), m.ID)
	}
	tw.Flush()
	if p.Next != "" {
		fmt.Fprintf(w, "More: add --cursor %s\n", p.Next)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printMessage(w io.Writer, m *store.Message) {
	fmt.Fprintf(w, "%s  %s\n", m.ID, strings.ToUpper(string(m.State)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, v)
		}
	}
	line("Subject:", dash(m.Subject))
	line("Received:", localTime(m.ReceivedAt))
	line("From:", m.HeaderFrom)
	if m.From != m.HeaderFrom {
		line("Envelope from:", dash(m.From))
	}
	line("To:", strings.Join(m.To, ", "))
	line("Message-Id:", m.MessageID)
	if m.Class != "" {
		line("Lane:", m.Class+" (rule "+dash(m.ClassRule)+")")
	}
	line("Login:", strings.TrimSpace(m.User+" from "+m.Client))
	line("Policy:", m.Verdict)
	line("Transport:", strings.TrimSpace(m.Transport+" "+m.Upstream))
	line("Mailjet ids:", strings.Join(m.MailjetIDs, ", "))
	line("Reason:", m.Reason)
	line("Odoo feedback:", m.Feedback)
	if m.HasRaw {
		line("Raw message:", fmt.Sprintf("%d bytes (mjrelay log --raw %s)", m.RawSize, m.ID))
	}
	tw.Flush()
	if len(m.Recipients) > 0 {
		fmt.Fprintln(w, "Recipients")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range m.Recipients {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Rcpt, r.State, r.Reply, r.MailjetID)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "Timeline")
	for _, s := range m.Timeline {
		text := s.Text
		if !s.Next.IsZero() {
			text += "; next attempt " + localTime(s.Next)
		}
		fmt.Fprintf(w, "  %s  %-7s  %s\n", localTime(s.Time), s.Source, text)
		if s.Reply != "" {
			fmt.Fprintf(w, "  %19s  %-7s    %s\n", "", "", s.Reply)
		}
	}
}
