package sendapi

import "encoding/json"

// Address is a v3.1 {"Email", "Name"} object.
type Address struct {
	Email string `json:"Email"`
	Name  string `json:"Name,omitempty"`
}

// Attachment is an entry of Attachments or InlinedAttachments. ContentID is
// set (without angle brackets) only for inlined attachments.
type Attachment struct {
	ContentType   string `json:"ContentType"`
	Filename      string `json:"Filename"`
	ContentID     string `json:"ContentID,omitempty"`
	Base64Content string `json:"Base64Content"`
}

// Message is one entry of the v3.1 Messages array, as this package sends it.
// Priority is a pointer because 0 is a valid priority.
type Message struct {
	From                   *Address          `json:"From"`
	To                     []Address         `json:"To"`
	Cc                     []Address         `json:"Cc,omitempty"`
	Bcc                    []Address         `json:"Bcc,omitempty"`
	ReplyTo                *Address          `json:"ReplyTo,omitempty"`
	Subject                string            `json:"Subject,omitempty"`
	TextPart               string            `json:"TextPart,omitempty"`
	HTMLPart               string            `json:"HTMLPart,omitempty"`
	TemplateID             int64             `json:"TemplateID,omitempty"`
	TemplateLanguage       bool              `json:"TemplateLanguage,omitempty"`
	TemplateErrorReporting *Address          `json:"TemplateErrorReporting,omitempty"`
	TemplateErrorDeliver   bool              `json:"TemplateErrorDeliver,omitempty"`
	Attachments            []Attachment      `json:"Attachments,omitempty"`
	InlinedAttachments     []Attachment      `json:"InlinedAttachments,omitempty"`
	Priority               *int              `json:"Priority,omitempty"`
	CustomCampaign         string            `json:"CustomCampaign,omitempty"`
	DeduplicateCampaign    bool              `json:"DeduplicateCampaign,omitempty"`
	TrackOpens             string            `json:"TrackOpens,omitempty"`
	TrackClicks            string            `json:"TrackClicks,omitempty"`
	CustomID               string            `json:"CustomID,omitempty"`
	EventPayload           string            `json:"EventPayload,omitempty"`
	MonitoringCategory     string            `json:"MonitoringCategory,omitempty"`
	Headers                map[string]string `json:"Headers,omitempty"`
	Variables              json.RawMessage   `json:"Variables,omitempty"`
}

// sendRequest is the body of POST /v3.1/send.
type sendRequest struct {
	Messages    []Message `json:"Messages"`
	SandboxMode bool      `json:"SandboxMode,omitempty"`
}

// sendResponse covers every JSON answer of /v3.1/send: per-message results
// (200, and 400/403 when a message failed), root-level validation errors
// ({"Errors": [...], "Messages": []}) and flat errors (401, mj-0002, 500).
type sendResponse struct {
	Messages []messageResult `json:"Messages"`
	Errors   []apiError      `json:"Errors"`

	ErrorIdentifier string `json:"ErrorIdentifier"`
	ErrorCode       string `json:"ErrorCode"`
	ErrorMessage    string `json:"ErrorMessage"`
	ErrorInfo       string `json:"ErrorInfo"`
	StatusCode      int    `json:"StatusCode"`
}

type messageResult struct {
	Status   string     `json:"Status"`
	CustomID string     `json:"CustomID"`
	To       []sentRcpt `json:"To"`
	Cc       []sentRcpt `json:"Cc"`
	Bcc      []sentRcpt `json:"Bcc"`
	Errors   []apiError `json:"Errors"`
}

type sentRcpt struct {
	Email       string `json:"Email"`
	MessageUUID string `json:"MessageUUID"`
	MessageID   int64  `json:"MessageID"`
	MessageHref string `json:"MessageHref"`
}

type apiError struct {
	ErrorIdentifier string   `json:"ErrorIdentifier"`
	ErrorCode       string   `json:"ErrorCode"`
	StatusCode      int      `json:"StatusCode"`
	ErrorMessage    string   `json:"ErrorMessage"`
	ErrorRelatedTo  []string `json:"ErrorRelatedTo"`
}
