#!/usr/bin/env python3
"""Odoo-style load on one relay, with smtplib as Odoo's ir.mail_server uses
it: a connection per batch of 10 mails, AUTH, send_message, quit.

  odoo_load.py HOST PORT USER PASSWORD PREFIX SECONDS [CLASS]

Each mail's Subject is a unique token PREFIX-bB-mM. It prints, flushed,
"ok TOKEN" for each 250 and "err TOKEN reason" for each failure (a refused
connection, a 4xx/5xx), and stops after SECONDS or at SIGTERM. CLASS
"bulk" adds Odoo's mass-mailing headers."""
import signal
import smtplib
import sys
import time
from email.message import EmailMessage
from email import policy
import email.utils

host, port, user, password, prefix, seconds = sys.argv[1:7]
klass = sys.argv[7] if len(sys.argv) > 7 else "transactional"
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
deadline = time.time() + float(seconds)


def build(token, i):
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "John <john@example.com>"
    msg["To"] = "client%d@example.org" % i
    msg["Subject"] = token
    msg["Message-Id"] = "<%s@odoo.example.com>" % token
    msg["Date"] = email.utils.formatdate()
    if klass == "bulk":
        msg["List-Unsubscribe"] = "<https://odoo.example.com/mail/mailing/7/unsubscribe>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content("Bonjour,\n" + ("x" * 76 + "\n") * 20)
    return msg


b = 0
while not stop and time.time() < deadline:
    b += 1
    try:
        smtp = smtplib.SMTP(host, int(port), timeout=60)
        smtp.login(user, password)
    except (OSError, smtplib.SMTPException) as e:
        print("err %s-b%d-connect %s" % (prefix, b, str(e).replace("\n", " ")), flush=True)
        time.sleep(0.2)
        continue
    for m in range(10):
        if stop or time.time() >= deadline:
            break
        token = "%s-b%d-m%d" % (prefix, b, m)
        try:
            smtp.send_message(build(token, m), "bounce@example.com", ["client%d@example.org" % m])
            print("ok " + token, flush=True)
        except (OSError, smtplib.SMTPException) as e:
            print("err %s %s" % (token, str(e).replace("\n", " ")), flush=True)
            break
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        pass
