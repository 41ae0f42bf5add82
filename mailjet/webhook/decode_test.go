package webhook

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	tNow  = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	tSent = time.Unix(1430812195, 0).UTC()
)

func now() time.Time { return tNow }

// TestDecoderNext: each element of a payload becomes an Event, read
// leniently, or a Skip with its reason.
func TestDecoderNext(t *testing.T) {
	long := "x" + strings.Repeat("é", MaxFieldBytes) // 2 bytes each after the x: a cut at MaxFieldBytes lands mid-rune
	tests := []struct {
		name     string
		element  string
		want     Event
		wantSkip *Skip
	}{
		{"bounce, every field", `{"event":"bounce","time":1430812195,"MessageID":288230376151711744,` +
			`"Message_GUID":"1AB23CD4-0000-4000-8000-000000000001","email":"mr.x@client.example","customcampaign":"Q4",` +
			`"CustomID":"q-1","error_related_to":"recipient","error":"user unknown","comment":"550 5.1.1",` +
			`"hard_bounce":true,"blocked":"1","source":"JMRPP","url":"https://x.example","ip":"192.0.2.1",` +
			`"geo":"FR","agent":"Mozilla/5.0","mj_list_id":"7","smtp_reply":"sent (250 OK)"}`,
			Event{Event: "bounce", Time: tSent, Email: "mr.x@client.example", MessageID: 288230376151711744,
				MessageUUID: "1ab23cd4-0000-4000-8000-000000000001", CustomID: "q-1", Campaign: "Q4",
				SMTPReply: "sent (250 OK)", ErrorRelatedTo: "recipient", Error: "user unknown", Comment: "550 5.1.1",
				HardBounce: true, Blocked: true, Source: "JMRPP", URL: "https://x.example", IP: "192.0.2.1",
				Geo: "FR", Agent: "Mozilla/5.0", ListID: 7}, nil},
		{"MessageID as a string, exact beyond float precision", `{"event":"sent","MessageID":"288230376151711745"}`,
			Event{Event: "sent", Time: tNow, MessageID: 288230376151711745}, nil},
		{"MessageID as a float", `{"event":"open","MessageID":1.5e3}`, Event{Event: "open", Time: tNow, MessageID: 1500}, nil},
		{"event name in capitals", `{"event":"SPAM","CustomID":"q"}`, Event{Event: "spam", Time: tNow, CustomID: "q"}, nil},
		{"time as a string", `{"event":"sent","time":"1430812195","CustomID":"q"}`, Event{Event: "sent", Time: tSent, CustomID: "q"}, nil},
		{"time in milliseconds is not a time", `{"event":"sent","time":1430812195000,"CustomID":"q"}`,
			Event{Event: "sent", Time: tNow, CustomID: "q"}, nil},
		{"wrong types ignored", `{"event":"click","time":"soon","MessageID":{"a":1},"CustomID":"q","email":42,"hard_bounce":"yes","mj_list_id":"x"}`,
			Event{Event: "click", Time: tNow, CustomID: "q"}, nil},
		{"fields clipped on a UTF-8 boundary", `{"event":"bounce","CustomID":"q","comment":"` + long + `"}`,
			Event{Event: "bounce", Time: tNow, CustomID: "q", Comment: long[:MaxFieldBytes-1]}, nil},
		{"only Message_GUID", `{"event":"unsub","Message_GUID":"ABC"}`, Event{Event: "unsub", Time: tNow, MessageUUID: "abc"}, nil},

		{"no ids", `{"event":"bounce","email":"mr.x@client.example","MessageID":0}`, Event{},
			&Skip{Event: "bounce", Reason: SkipNoID, Detail: "no CustomID, MessageID or Message_GUID"}},
		{"unknown event", `{"event":"Teleport","CustomID":"q"}`, Event{},
			&Skip{Event: "teleport", Reason: SkipUnknownEvent, Detail: "unknown event name"}},
		{"unknown event, long name", `{"event":"` + strings.Repeat("x", 100) + `","CustomID":"q"}`, Event{},
			&Skip{Event: strings.Repeat("x", maxNameBytes), Reason: SkipUnknownEvent, Detail: "unknown event name"}},
		{"event name not a string", `{"event":["sent"],"CustomID":"q"}`, Event{},
			&Skip{Reason: SkipMalformed, Detail: "no event name"}},
		{"not an object", `[1]`, Event{}, &Skip{Reason: SkipMalformed, Detail: "not a JSON object"}},
		{"null", `null`, Event{}, &Skip{Reason: SkipMalformed, Detail: "not a JSON object"}},
		{"oversized", `{"event":"sent","CustomID":"q","comment":"` + strings.Repeat("x", MaxEventBytes) + `"}`, Event{},
			&Skip{Reason: SkipMalformed, Detail: fmt.Sprintf("event object over %d KiB", MaxEventBytes>>10)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader("["+tc.element+"]"), now)
			ev, skip, err := d.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(skip, tc.wantSkip) {
				t.Errorf("skip %+v, want %+v", skip, tc.wantSkip)
			}
			if !reflect.DeepEqual(ev, tc.want) {
				t.Errorf("event\n%+v\nwant\n%+v", ev, tc.want)
			}
			if _, _, err := d.Next(); err != io.EOF {
				t.Errorf("after the only element: %v, want io.EOF", err)
			}
		})
	}
}

// TestDecoderBatch: events come in batches of at most max, skipped ones go
// to the callback, and a payload that breaks keeps the events before it.
func TestDecoderBatch(t *testing.T) {
	ev := func(i int) string { return fmt.Sprintf(`{"event":"open","CustomID":"q-%d"}`, i) }
	var els []string
	for i := range 7 {
		els = append(els, ev(i))
		if i == 2 {
			els = append(els, `{"event":"teleport","CustomID":"q"}`, `{"event":"sent"}`)
		}
	}
	tests := []struct {
		name    string
		body    string
		sizes   []int // of each batch
		skips   []string
		wantErr error // of the last batch; errAny: a syntax error
	}{
		{"array", "[" + strings.Join(els, ",") + "]", []int{3, 3, 1}, []string{SkipUnknownEvent, SkipNoID}, io.EOF},
		{"ends on a batch boundary", "[" + strings.Join(els[:8], ",") + "]", []int{3, 3, 0}, []string{SkipUnknownEvent, SkipNoID}, io.EOF},
		{"one object", ev(0), []int{1}, nil, io.EOF},
		{"breaks after four events", "[" + strings.Join(els[:6], ",") + ` {"event"`, []int{3, 1}, []string{SkipUnknownEvent, SkipNoID}, errAny},
		{"cut short", "[" + strings.Join(els[:2], ",") + `,{"event":"se`, []int{2}, nil, io.ErrUnexpectedEOF},
		{"not JSON", "event=sent&CustomID=x", []int{0}, nil, errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(tc.body), now)
			var sizes []int
			var skips []string
			var err error
			seen := 0
			for err == nil {
				var batch []Event
				batch, err = d.Batch(3, func(s Skip) { skips = append(skips, s.Reason) })
				sizes = append(sizes, len(batch))
				for _, e := range batch {
					if want := fmt.Sprintf("q-%d", seen); e.CustomID != want {
						t.Errorf("event %d is %q", seen, e.CustomID)
					}
					seen++
				}
				if len(batch) < 3 && err == nil {
					t.Fatalf("a short batch (%d) without an error", len(batch))
				}
			}
			if !reflect.DeepEqual(sizes, tc.sizes) || !reflect.DeepEqual(skips, tc.skips) {
				t.Errorf("batches %v, skips %v; want %v, %v", sizes, skips, tc.sizes, tc.skips)
			}
			switch {
			case tc.wantErr == errAny && (err == io.EOF || err == nil):
				t.Errorf("ended with %v, want a syntax error", err)
			case tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Errorf("ended with %v, want %v", err, tc.wantErr)
			}
		})
	}
}
