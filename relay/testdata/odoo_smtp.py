#!/usr/bin/env python3
"""Replays what Odoo 17/18 (ir.mail_server) does over SMTP, with Python's
smtplib exactly as Odoo calls it (see shared/reference/odoo.md):

  odoo_smtp.py test-connection HOST PORT none|starttls|ssl USER PASSWORD FROM
  odoo_smtp.py batch HOST PORT none|starttls|ssl USER PASSWORD N
  odoo_smtp.py send-sized HOST PORT none|starttls|ssl USER PASSWORD SIZE

It prints one JSON object with what happened and exits 0 unless the script
itself failed."""
import json
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.headerregistry import Address
from email import policy
import email.utils


def connect(host, port, encryption, user, password):
    # ir_mail_server.connect(): SMTP_SSL for 'ssl', else SMTP, timeout 60;
    # starttls() with Odoo's default context (None -> unverified in 3.11).
    if encryption == "ssl":
        conn = smtplib.SMTP_SSL(host, port, timeout=60, context=ssl._create_unverified_context())
    else:
        conn = smtplib.SMTP(host, port, timeout=60)
    if encryption == "starttls":
        conn.starttls(context=ssl._create_unverified_context())
    if user:
        conn.login(user, password)
    conn.ehlo_or_helo_if_needed()
    return conn


def test_connection(host, port, encryption, user, password, email_from):
    out = {}
    smtp = None
    try:
        smtp = connect(host, port, encryption, user, password)
        out["size"] = smtp.esmtp_features.get("size")
        out["features"] = sorted(smtp.esmtp_features.keys())
        code, repl = smtp.mail(email_from)
        out["mail"] = [code, repl.decode()]
        if code != 250:
            out["result"] = "The server refused the sender address (%s) with error %s" % (email_from, repl.decode())
            return out
        code, repl = smtp.rcpt("noreply@odoo.com")
        out["rcpt"] = [code, repl.decode()]
        if code not in (250, 251):
            out["result"] = "The server refused the test recipient (noreply@odoo.com) with error %s" % repl.decode()
            return out
        smtp.putcmd("data")
        code, repl = smtp.getreply()
        out["data"] = [code, repl.decode()]
        out["result"] = "Connection Test Successful!" if code == 354 else "The server refused the test connection with error %s" % repl.decode()
    except smtplib.SMTPAuthenticationError as e:
        out["result"] = "Server replied with following exception:\n %s" % e
    except smtplib.SMTPNotSupportedError as e:
        out["result"] = "An option is not supported by the server:\n %s" % e
    except smtplib.SMTPException as e:
        out["result"] = "An SMTP exception occurred: %s" % e
    finally:
        if smtp is not None:
            smtp.close()  # no QUIT, no '.', no RSET: just close, as Odoo does
    return out


def build(i):
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address("Jöhn Dœ", "john", "example.com")
    msg["To"] = "Client %d <client%d@example.org>" % (i, i)
    msg["Subject"] = "Facture n°%d — été" % i
    msg["Message-Id"] = "<%d.1700000000.%015f-openerp-%d-account.move@odoo.example.com>" % (i, 0.5, i)
    msg["Date"] = email.utils.formatdate()
    msg["Return-Path"] = "bounce@example.com"
    msg["X-Odoo-Objects"] = "account.move-%d" % i
    # A short UTF-8 body goes out as raw 8-bit, without BODY=8BITMIME.
    msg.set_content("Bonjour, voici votre facture n°%d.\nÀ bientôt.\n.\n..leading dots\n" % i)
    msg.add_alternative("<p>Bonjour, voici votre facture n°%d.</p>" % i, subtype="html")
    return msg


def batch(host, port, encryption, user, password, n):
    out = {"sent": 0, "refused": [], "errors": []}
    smtp = connect(host, port, encryption, user, password)
    for i in range(n):
        try:
            refused = smtp.send_message(build(i), "bounce@example.com", ["client%d@example.org" % i])
            out["sent"] += 1
            if refused:
                out["refused"].append({k: [v[0], v[1].decode()] for k, v in refused.items()})
        except smtplib.SMTPException as e:
            out["errors"].append(str(e))
            smtp.rset()
    # SMTPUTF8: a non-ASCII local part makes smtplib send SMTPUTF8 BODY=8BITMIME.
    utf = EmailMessage(policy=policy.SMTP)
    utf["From"] = "john@example.com"
    utf["To"] = "jürgen@example.org"
    utf["Subject"] = "utf8 envelope"
    utf.set_content("hallo\n")
    try:
        smtp.send_message(utf, "bounce@example.com", ["jürgen@example.org"])
        out["utf8"] = "ok"
    except smtplib.SMTPException as e:
        out["utf8"] = str(e)
    smtp.quit()
    return out


def send_sized(host, port, encryption, user, password, size):
    # One message of exactly `size` bytes as smtplib sends it: the size=
    # of MAIL FROM, and what the server has after dot-unstuffing.
    head = b"From: john@example.com\r\nTo: client@example.org\r\nSubject: sized\r\n\r\n"
    full, rest = divmod(size - len(head), 80)  # lines of 78 x + CRLF
    line = b"x" * 78 + b"\r\n"
    if rest == 1:  # no line of one byte: lengthen one
        body = line * (full - 1) + b"x" * 79 + b"\r\n"
    else:
        body = line * full + (b"x" * (rest - 2) + b"\r\n" if rest else b"")
    msg = head + body
    assert len(msg) == size
    smtp = connect(host, port, encryption, user, password)
    out = {"size": len(msg)}
    try:
        smtp.sendmail("bounce@example.com", ["client@example.org"], msg)
        out["result"] = "sent"
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
        # What Odoo shows: the exception name and (code, reply).
        out["result"] = type(e).__name__
        out["reply"] = "%d %s" % (e.smtp_code, e.smtp_error.decode())
    smtp.close()
    return out


def main():
    mode, host, port, enc, user, password = sys.argv[1:7]
    if mode == "test-connection":
        res = test_connection(host, int(port), enc, user, password, sys.argv[7])
    elif mode == "send-sized":
        res = send_sized(host, int(port), enc, user, password, int(sys.argv[7]))
    else:
        res = batch(host, int(port), enc, user, password, int(sys.argv[7]))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
