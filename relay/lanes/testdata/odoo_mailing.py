"""Prints, byte for byte, the message Odoo 17/18 sends for one mass mailing.

Odoo builds mail with email.message.EmailMessage(policy=email.policy.SMTP)
(ir_mail_server.build_email) and mass_mailing adds the List-Unsubscribe
headers (mail_mail._prepare_outgoing_list); smtplib.send_message flattens it
with BytesGenerator(linesep="\\r\\n"). Python's email library RFC 2047-encodes
any header value longer than 77 characters and folds it, which is what the
relay must read. Regenerate with:

    python3 odoo_mailing.py > odoo_mailing.eml
"""

import io
import sys
from email import generator, policy
from email.message import EmailMessage

BASE = "https://erp.example.com"
MAILING_ID = 12


def unsubscribe_url():
    # <base>/mailing/<id>/unsubscribe_oneclick?document_id=..&email=..&hash_token=..
    url = "%s/mailing/%d/unsubscribe_oneclick?document_id=3&email=a%%40b.c&hash_token=" % (BASE, MAILING_ID)
    return url + "f" * (120 - len(url))  # a 120-character URL


def build():
    url = unsubscribe_url()
    assert len(url) == 120, len(url)
    msg = EmailMessage(policy=policy.SMTP)
    msg["Message-Id"] = "<837.1700000000.500000000000000-openerp-3-res.partner@odoo.example.com>"
    msg["Subject"] = "Our November newsletter"
    msg["From"] = "news@example.com"
    msg["Reply-To"] = "news@example.com"
    msg["To"] = "a@b.c"
    msg["Return-Path"] = "bounce@example.com"
    msg["X-Odoo-Objects"] = "res.partner-3"
    for key, value in {
        "List-Unsubscribe": "<%s>" % url,
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": "list",
        "X-Auto-Response-Suppress": "OOF",
    }.items():
        msg[key] = value
    msg.set_content("Hello,\nthe news of the month.\n")
    return msg


def main():
    buf = io.BytesIO()
    # As smtplib.SMTP.send_message does it.
    generator.BytesGenerator(buf).flatten(build(), linesep="\r\n")
    sys.stdout.buffer.write(buf.getvalue())


if __name__ == "__main__":
    main()
