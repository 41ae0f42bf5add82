package mailjet

// MaskKey shortens a Mailjet API key (the public half of the key pair) for
// logs, replies and the UI: its first four characters, enough to tell two
// keys apart, and never the whole key.
func MaskKey(key string) string {
	if key == "" {
		return ""
	}
	return key[:min(4, len(key))] + "…"
}
