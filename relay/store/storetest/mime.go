package storetest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"mime/quotedprintable"
	"strings"
)

// Rich is a message as Odoo sends an invoice, with what the UI must show
// and must not do: an HTML body with an inline image (cid:), a remote
// image and a script, a text alternative in ISO-8859-1, a PDF attachment,
// and a subject and sender name in RFC 2047 words.
type Rich struct {
	Raw []byte
	// Subject and FromName are the decoded header values.
	Subject, FromName string
	// PDF is the attachment's content, PDFName its file name, PDFPart its
	// MIME part number; PNG is the inline image's content, PNGPart its
	// part number; Text is the decoded text part.
	PDF, PNG         []byte
	PDFName, PDFPart string
	PNGPart          string
	Text             string
	// Probe is the text of the HTML's element #probe, which its script
	// would change to "SCRIPT RAN".
	Probe string
}

// RichOptions say where the rich message's HTML points: Remote is the URL
// of its remote image, Beacon the URL its script would load if it ran.
type RichOptions struct {
	From, To       string
	Remote, Beacon string
}

// NewRich builds the rich message.
func NewRich(o RichOptions) Rich {
	r := Rich{Subject: "Facture INV/2026/0042 — échéance", FromName: "Acme Comptabilité",
		PDFName: "Facture INV-2026-0042 é.pdf", PDFPart: "2", PNGPart: "1.2",
		Text: "Bonjour Mr. X,\nvotre facture est jointe: échéance le 30.\n", Probe: "script did not run"}
	r.PNG = tinyPNG()
	r.PDF = []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
		"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
	latin1 := strings.NewReplacer("é", "\xe9").Replace(r.Text)
	html := `<!doctype html><html><head><style>p{color:#333;font-family:sans-serif}</style></head><body>
<p id="probe">` + r.Probe + `</p>
<script>document.getElementById("probe").textContent="SCRIPT RAN";new Image().src="` + o.Beacon + `";</script>
<p>Bonjour Mr. X, votre facture est jointe: <b>échéance le 30</b>.</p>
<img id="logo" src="cid:logo@acme.example" alt="logo" width="40" height="40">
<img id="remote" src="` + o.Remote + `" alt="remote image" width="40" height="40">
<p><a href="https://acme.example/my/invoices/42" target="_blank">Voir la facture</a></p>
</body></html>`
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("From: =?utf-8?q?Acme_Comptabilit=C3=A9?= <%s>\r\n", o.From)
	w("To: \"Mr. X\" <%s>\r\n", o.To)
	w("Subject: =?utf-8?b?%s?=\r\n", base64.StdEncoding.EncodeToString([]byte(r.Subject)))
	w("Date: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-Id: <rich.42@odoo.example>\r\nMIME-Version: 1.0\r\n")
	w("Content-Type: multipart/mixed; boundary=\"=mixed\"\r\n\r\nThis is a multi-part message in MIME format.\r\n")
	w("--=mixed\r\nContent-Type: multipart/related; boundary=\"=rel\"\r\n\r\n")
	w("--=rel\r\nContent-Type: multipart/alternative; boundary=\"=alt\"\r\n\r\n")
	w("--=alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n", qp(latin1))
	w("--=alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n", qp(html))
	w("--=alt--\r\n\r\n")
	w("--=rel\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-Id: <logo@acme.example>\r\n"+
		"Content-Disposition: inline; filename=\"logo.png\"\r\n\r\n%s\r\n", b64(r.PNG))
	w("--=rel--\r\n\r\n")
	w("--=mixed\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\n"+
		"Content-Disposition: attachment; filename*=utf-8''Facture%%20INV-2026-0042%%20%%C3%%A9.pdf\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n", b64(r.PDF))
	w("--=mixed--\r\n")
	r.Raw = b.Bytes()
	return r
}

func qp(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(strings.ReplaceAll(s, "\n", "\r\n")))
	w.Close()
	return b.String()
}

// b64 encodes in 76-character lines, as mail does.
func b64(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var lines []string
	for len(s) > 76 {
		lines, s = append(lines, s[:76]), s[76:]
	}
	return strings.Join(append(lines, s), "\r\n")
}

// tinyPNG is a 4×4 red square.
func tinyPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for x := range 4 {
		for y := range 4 {
			img.Set(x, y, color.RGBA{R: 200, A: 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}
