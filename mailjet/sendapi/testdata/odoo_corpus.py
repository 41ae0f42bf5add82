#!/usr/bin/env python3
"""Build a corpus of messages the way Odoo 17/18 builds them, for mjrelay's
Send API conversion tests.

Usage: odoo_corpus.py OUTDIR [--fuzz FUZZDIR]

Writes OUTDIR/<case>.eml (CRLF, serialised like smtplib.send_message does:
BytesGenerator with an SMTP policy) and OUTDIR/expected.json, which lists
for every case the envelope, the relay hints and the Send API v3.1 fields
the conversion must produce. The expected values are computed here from the
same source data the messages are built from (never by parsing the .eml), so
the Go side is checked against Python's own idea of the message.

With --fuzz, also writes every message as a Go fuzz corpus file for
FuzzConvert (arguments: raw []byte, rcpts string) into FUZZDIR.
"""

import base64
import datetime
import email.policy
import json
import os
import sys
from email.headerregistry import Address
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText



class OdooPolicy(email.policy.EmailPolicy):
    """Odoo's SMTP policy: CRLF, and the message-id headers are never folded
    (Python would otherwise fold long ones into RFC 2047 encoded words)."""

    def _fold(self, name, value, *args, **kwargs):
        if name.lower() in ("message-id", "references", "in-reply-to"):
            return "%s: %s%s" % (name, str(value).strip(), self.linesep)
        return super()._fold(name, value, *args, **kwargs)


POLICY = OdooPolicy(linesep="\r\n")

# Headers the Send API refuses in Headers (mailjet.md section 2), plus those
# mapped onto properties or carried by the MIME structure. Lower case.
FORBIDDEN = {
    "from", "sender", "subject", "to", "cc", "bcc", "return-path",
    "delivered-to", "dkim-signature", "domainkey-status", "received-spf",
    "authentication-results", "received", "x-mailjet-prio", "x-mailjet-debug",
    "user-agent", "x-mailer", "x-mj-customid", "x-mj-eventpayload",
    "x-mj-vars", "x-mj-templateerrordeliver", "x-mj-templateerrorreporting",
    "x-mj-templatelanguage", "x-mailjet-trackopen", "x-mailjet-trackclick",
    "x-mj-templateid", "x-mj-workflowid", "x-feedback-id",
    "x-mailjet-segmentation", "list-id", "x-mj-mid", "x-mj-errormessage",
    "date", "x-csa-complaints", "message-id", "x-mailjet-campaign",
    "x-mj-statisticscontactslistid",
}
MAPPED = {"reply-to", "x-mailjet-deduplicatecampaign", "x-mj-monitoringcategory"}
STRUCTURAL = {"mime-version", "content-type", "content-transfer-encoding"}

PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       + bytes(range(256)) + b"\ntrailer<</Root 1 0 R>>\n%%EOF\n")
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
CSV_LATIN1 = "nom;ville;montant\nJérôme;Liège;12,50\nZoë;Genève;7,00\n".encode("iso-8859-1")
ICS = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
       b"SUMMARY:R\xc3\xa9union\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

DATE = datetime.datetime(2026, 11, 3, 9, 30, tzinfo=datetime.timezone.utc)


def addr(name, email_addr):
    return {"Email": email_addr, "Name": name}


def att(content_type, filename, data, cid=None):
    d = {"ContentType": content_type, "Filename": filename,
         "Base64": base64.b64encode(data).decode("ascii")}
    if cid is not None:
        d["ContentID"] = cid
    return d


def odoo_headers(msg, hdrs):
    """Set headers in the order Odoo's build_email does; return the ones the
    conversion must keep in Headers, with their decoded values."""
    kept = {}
    for name, value in hdrs:
        msg[name] = value
        low = name.lower()
        if low not in FORBIDDEN and low not in MAPPED and low not in STRUCTURAL:
            kept[name] = value
    return kept


def fmt(name, email_addr):
    return Address(name, addr_spec=email_addr) if name else email_addr


def base_message(frm, to, cc=(), subject="", reply_to=None, extra=()):
    """An EmailMessage with Odoo's standard headers; returns (msg, kept)."""
    msg = EmailMessage(policy=POLICY)
    hdrs = [
        ("Return-Path", "bounce@example.com"),
        ("Message-Id", "<592610428138519.1762162200.123456789012345-openerp-42-res.partner@odoo-prod>"),
        ("References", "<592610428138519.1762162200.123456789012345-openerp-42-res.partner@odoo-prod>"),
        ("Subject", subject),
        ("From", fmt(*frm)),
        ("Reply-To", fmt(*(reply_to or frm))),
        ("To", ", ".join(str(fmt(n, a)) for n, a in to)),
    ]
    if cc:
        hdrs.append(("Cc", ", ".join(str(fmt(n, a)) for n, a in cc)))
    hdrs.append(("Date", DATE))
    hdrs.extend(extra)
    kept = odoo_headers(msg, hdrs)
    return msg, kept


def expected_msg(frm, to, cc, bcc, subject, text, html, kept, reply_to=None,
                 attachments=(), inlined=(), custom_id="", priority=None,
                 campaign="", **props):
    m = {
        "From": addr(*frm), "ReplyTo": addr(*(reply_to or frm)),
        "To": [addr(n, a) for n, a in to], "Cc": [addr(n, a) for n, a in cc],
        "Bcc": [addr("", a) for a in bcc], "Subject": subject,
        "TextPart": text, "HTMLPart": html,
        "Attachments": list(attachments), "InlinedAttachments": list(inlined),
        "Headers": kept, "CustomID": custom_id, "Priority": priority,
        "CustomCampaign": campaign,
    }
    m.update(props)
    return m


FROM = ("Jérôme Dupont", "notifications@example.com")
ZOE = ("Zoë Ünal", "zoe@example.org")
BOB = ("", "bob@example.net")
CARLA = ("Carla “CFO” Ñúñez", "carla@example.com")
TEXT = "Bonjour Zoë,\n\nVotre commande n°42 a été expédiée.\n\n-- \nJérôme\n"
HTML = ("<div>Bonjour Zoë,<br/><br/>Votre commande <b>n°42</b> a été expédiée."
        "</div>\n<div>-- <br/>Jérôme</div>\n")


def case_notification():
    subject = "Re: Commande S00042 — livraison prévue le 5 novembre (été 2026) “urgent”"
    msg, kept = base_message(FROM, [ZOE], subject=subject, extra=[
        ("X-Odoo-Objects", "sale.order-42"),
        ("In-Reply-To", "<111.222-openerp-42-sale.order@odoo-prod>"),
        ("X-Odoo-Note", "Références: été"),
    ])
    msg.set_content(TEXT, charset="utf-8")
    msg.add_alternative(HTML, subtype="html", charset="utf-8")
    exp = expected_msg(FROM, [ZOE], [], [], subject, TEXT, HTML, kept, custom_id="q-notif")
    return msg, ["zoe@example.org"], "q-notif", {"priority": -1, "campaign": ""}, [exp]


def case_mass_mailing():
    unsub = ("<https://odoo.example.com/mailing/12/unsubscribe_oneclick?document_id=4711"
             "&email=zoe%40example.org&hash_token=0123456789abcdef0123456789abcdef>")
    subject = "Newsletter de novembre : nouveautés 🎉"
    msg, kept = base_message(FROM, [ZOE], subject=subject, extra=[
        ("X-Odoo-Objects", "mailing.mailing-12"),
        ("List-Unsubscribe", unsub),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Precedence", "list"),
        ("X-Auto-Response-Suppress", "OOF"),
    ])
    html = ('<html><body><p>Nouveautés de novembre</p><img src="https://odoo.example.com/mail/track/'
            '77/0123abcd/blank.gif" alt=""/>\n<a href="https://odoo.example.com/r/aB3d/m/991">Voir</a>'
            + " " * 3 + "é" * 120 + "\n</body></html>\n")
    text = "Nouveautés de novembre\n[Voir] https://odoo.example.com/r/aB3d/m/991\n" + "é" * 120 + "\n"
    msg.set_content(text, charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    exp = expected_msg(FROM, [ZOE], [], [], subject, text, html, kept,
                       custom_id="q-mass", priority=1, campaign="mailing-12")
    return msg, ["zoe@example.org"], "q-mass", {"priority": 1, "campaign": "mailing-12"}, [exp]


def case_attachments():
    subject = "Facture FAC/2026/0042"
    msg, kept = base_message(FROM, [ZOE], subject=subject)
    msg.set_content(TEXT, charset="utf-8")
    msg.add_alternative(HTML, subtype="html", charset="utf-8")
    long_name = "Facture n°42 — données très longues à rallonge pour voir le repli RFC 2231.pdf"
    msg.add_attachment(PDF, "application", "pdf", filename=long_name)
    msg.add_attachment(CSV_LATIN1, "text", "csv", filename="export.csv",
                       params={"charset": "iso-8859-1"})
    msg.add_attachment(CSV_LATIN1, "text", "csv", filename="brut.csv")
    msg.add_attachment(ICS, "text", "calendar", filename="invitation.ics",
                       params={"method": "REQUEST", "charset": "utf-8"})
    atts = [
        att("application/pdf", long_name, PDF),
        att("text/csv; charset=iso-8859-1", "export.csv", CSV_LATIN1),
        att("text/csv", "brut.csv", CSV_LATIN1),
        att("text/calendar; charset=utf-8; method=REQUEST", "invitation.ics", ICS),
    ]
    exp = expected_msg(FROM, [ZOE], [], [], subject, TEXT, HTML, kept,
                       attachments=atts, custom_id="q-att")
    return msg, ["zoe@example.org"], "q-att", {"priority": -1, "campaign": ""}, [exp]


def case_inline_images():
    subject = "Logo inline"
    msg, kept = base_message(FROM, [ZOE], subject=subject)
    text = "Voir le logo.\n"
    html = '<p><img src="cid:logo@odoo.example.com"/> et <img src="cid:dot.gif"/></p>\n'
    msg.set_content(text, charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    html_part = msg.get_payload()[1]
    # Python's add_related with a filename writes Content-Disposition: attachment.
    html_part.add_related(PNG, "image", "png", cid="<logo@odoo.example.com>", filename="logo.png")
    html_part.add_related(GIF, "image", "gif", cid="<dot.gif>", disposition="inline")
    msg.add_attachment(PDF, "application", "pdf", filename="cgv.pdf")
    inl = [att("image/png", "logo.png", PNG, cid="logo@odoo.example.com"),
           att("image/gif", None, GIF, cid="dot.gif")]
    exp = expected_msg(FROM, [ZOE], [], [], subject, text, html, kept,
                       attachments=[att("application/pdf", "cgv.pdf", PDF)], inlined=inl,
                       custom_id="q-inline")
    return msg, ["zoe@example.org"], "q-inline", {"priority": -1, "campaign": ""}, [exp]


def case_latin1_qp():
    subject = "Relevé de compte — Société Générale"
    msg, kept = base_message(FROM, [ZOE], subject=subject)
    text = "Cher client,\nVoici votre relevé : solde créditeur 1 234,56 €uro? non : « livres ».\n" \
           "Ligne avec espace finale   \n" + "àéîõü" * 20 + "\n"
    text = text.replace("€", "E")  # not in ISO-8859-1
    html = "<p>Cher client, voici votre relevé « détaillé ».</p>\n"
    msg.set_content(text, charset="iso-8859-1", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="iso-8859-1", cte="quoted-printable")
    exp = expected_msg(FROM, [ZOE], [], [], subject, text, html, kept, custom_id="q-latin1")
    return msg, ["zoe@example.org"], "q-latin1", {"priority": -1, "campaign": ""}, [exp]


def case_client_headers():
    subject = "Transactionnel urgent"
    variables = {"prénom": "Zoë", "n": 42}
    msg, kept = base_message(FROM, [ZOE], subject=subject, extra=[
        ("X-Mailjet-Prio", "3"),
        ("X-Mailjet-Campaign", "relances-2026"),
        ("X-Mailjet-DeduplicateCampaign", "yes"),
        ("X-Mailjet-TrackOpen", "0"),
        ("X-Mailjet-TrackClick", "1"),
        ("X-MJ-CustomID", "facture-42"),
        ("X-MJ-EventPayload", '{"invoice": 42}'),
        ("X-MJ-Vars", json.dumps(variables, ensure_ascii=False)),
        ("X-MJ-MonitoringCategory", "factures"),
        ("X-Mailer", "Odoo"),
        ("User-Agent", "Odoo Server"),
        ("DKIM-Signature", "v=1; a=rsa-sha256; d=example.com; s=odoo; b=abc"),
    ])
    msg.set_content(TEXT, charset="utf-8")
    exp = expected_msg(FROM, [ZOE], [], [], subject, TEXT, "", kept,
                       custom_id="facture-42", priority=3, campaign="relances-2026",
                       DeduplicateCampaign=True, TrackOpens="disabled",
                       TrackClicks="enabled", EventPayload='{"invoice": 42}',
                       MonitoringCategory="factures", Variables=variables)
    # The relay's hints must lose against the client's headers.
    return msg, ["zoe@example.org"], "q-client", {"priority": 0, "campaign": "lane-bulk"}, [exp]


def case_envelope_bcc():
    subject = "Compte rendu"
    dave = ("Dave Hors-Enveloppe", "dave@example.net")
    msg, kept = base_message(FROM, [ZOE, dave], cc=[CARLA], subject=subject)
    msg.set_content(TEXT, charset="utf-8")
    rcpts = ["carla@example.com", "Zoe@Example.org", "secret@example.com"]
    # To: the envelope recipients that appear in To (dave is not one), as the
    # header spells them; Cc likewise; the rest of the envelope becomes Bcc.
    exp = expected_msg(FROM, [ZOE], [CARLA], ["secret@example.com"],
                       subject, TEXT, "", kept, custom_id="q-bcc", priority=2)
    return msg, rcpts, "q-bcc", {"priority": 2, "campaign": ""}, [exp]


def case_bcc_only():
    subject = "Invitation"
    lst = ("Liste des invités", "invites@example.com")
    msg, kept = base_message(FROM, [lst], subject=subject)
    msg.set_content(TEXT, charset="utf-8")
    rcpts = ["b1@example.com", "b2@example.org"]
    exps = [expected_msg(FROM, [("", r)], [], [], subject, TEXT, "", kept, custom_id="q-bcconly")
            for r in rcpts]
    return msg, rcpts, "q-bcconly", {"priority": -1, "campaign": ""}, exps


def case_html_only_8bit():
    subject = "Ünïcödé ✓ subject"
    msg, kept = base_message(FROM, [BOB], subject=subject, reply_to=("Équipe Support", "support@example.com"))
    html = "<p>Ça marche ✓ — 漢字</p>\n"
    msg.set_content(html, subtype="html", charset="utf-8")
    exp = expected_msg(FROM, [BOB], [], [], subject, "", html, kept,
                       reply_to=("Équipe Support", "support@example.com"), custom_id="q-html")
    return msg, ["bob@example.net"], "q-html", {"priority": -1, "campaign": ""}, [exp]


def case_signed():
    outer = MIMEMultipart("signed", protocol="application/pkcs7-signature", micalg="sha-256")
    outer.attach(MIMEText("signed body\n", "plain", "utf-8"))
    sig = MIMEApplication(b"\x30\x82\x01\x00fake-signature", "pkcs7-signature", name="smime.p7s")
    sig.add_header("Content-Disposition", "attachment", filename="smime.p7s")
    outer.attach(sig)
    outer["From"] = "notifications@example.com"
    outer["To"] = "zoe@example.org"
    outer["Subject"] = "signed"
    return outer, ["zoe@example.org"], "q-signed", {"priority": -1, "campaign": ""}, "signed"


def case_smime_encrypted():
    msg = MIMEApplication(b"\x30\x80encrypted", "pkcs7-mime", name="smime.p7m")
    msg.set_param("smime-type", "enveloped-data")
    msg.add_header("Content-Disposition", "attachment", filename="smime.p7m")
    msg["From"] = "notifications@example.com"
    msg["To"] = "zoe@example.org"
    msg["Subject"] = "encrypted"
    return msg, ["zoe@example.org"], "q-p7m", {"priority": -1, "campaign": ""}, "pkcs7-mime"


def case_no_body():
    msg, _ = base_message(FROM, [ZOE], subject="Pièce jointe seule")
    msg.add_attachment(PDF, "application", "pdf", filename="seul.pdf")
    return msg, ["zoe@example.org"], "q-nobody", {"priority": -1, "campaign": ""}, "no text/plain or text/html"


CASES = [
    ("notification", case_notification),
    ("mass_mailing", case_mass_mailing),
    ("attachments", case_attachments),
    ("inline_images", case_inline_images),
    ("latin1_qp", case_latin1_qp),
    ("client_headers", case_client_headers),
    ("envelope_bcc", case_envelope_bcc),
    ("bcc_only", case_bcc_only),
    ("html_only_8bit", case_html_only_8bit),
    ("signed", case_signed),
    ("smime_encrypted", case_smime_encrypted),
    ("no_body", case_no_body),
]


def go_quote(data):
    out = []
    for b in data:
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7f:
            out.append(c)
        else:
            out.append("\\x%02x" % b)
    return '"' + "".join(out) + '"'


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    outdir = argv[1]
    fuzzdir = argv[argv.index("--fuzz") + 1] if "--fuzz" in argv else None
    os.makedirs(outdir, exist_ok=True)
    expected = []
    for name, build in CASES:
        msg, rcpts, qid, hints, result = build()
        raw = msg.as_bytes(policy=POLICY)  # what smtplib.send_message puts in DATA
        fname = name + ".eml"
        with open(os.path.join(outdir, fname), "wb") as f:
            f.write(raw)
        entry = {"name": name, "file": fname, "id": qid, "rcpts": rcpts, "hints": hints}
        if isinstance(result, str):
            entry["unsupported"] = True
            entry["reason"] = result
        else:
            entry["unsupported"] = False
            entry["messages"] = result
        expected.append(entry)
        if fuzzdir:
            os.makedirs(fuzzdir, exist_ok=True)
            with open(os.path.join(fuzzdir, "odoo_" + name), "w") as f:
                f.write("go test fuzz v1\n[]byte(%s)\nstring(%s)\n"
                        % (go_quote(raw), go_quote(",".join(rcpts).encode())))
    with open(os.path.join(outdir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main(sys.argv)
