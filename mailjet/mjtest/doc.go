// Package mjtest is an emulator of Mailjet for tests: the SMTP relay
// (in-v3.mailjet.com: STARTTLS or implicit TLS, AUTH with the API key and
// secret key, injectable failures), the Send API v3.1 (POST /v3.1/send) and
// the REST resources the relay reads (/v3/REST/sender, /v3/REST/dns), each
// as Mailjet documents it and as its Go SDK was seen to behave. Servers
// listen on 127.0.0.1 only.
package mjtest
