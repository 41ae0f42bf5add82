// Package mjtest is an emulator of Mailjet for tests: the SMTP relay
// (in-v3.mailjet.com: STARTTLS or implicit TLS, AUTH with the API key and
// secret key, injectable failures) and the REST API, following what
// shared/reference/mailjet.md documents. Servers listen on 127.0.0.1 only.
package mjtest
