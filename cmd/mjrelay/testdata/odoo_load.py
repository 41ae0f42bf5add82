#!/usr/bin/env python3
"""Sends mail as Odoo's mail queue does, until stdin is closed: THREADS
threads, each opening a new connection for every batch of BATCH mails
(smtplib.SMTP with a 60 s timeout, STARTTLS without verification, login,
send_message for each mail, quit), as ir.mail_server and mail.mail do (see
shared/reference/odoo.md sections 1 and 4).

  odoo_load.py HOST PORT USER PASSWORD PREFIX [THREADS] [BATCH]

Each mail's Subject is a token PREFIX-tT-bB-mI. Prints one JSON object:
  acked       the tokens the relay answered 250 to
  refused     connections refused (or reset before the greeting)
  unexpected  every other error: a reply that is not 250, a disconnect
  batches     batches done
A line "progress N" goes to stderr after each batch (N mails acknowledged)."""
import json
import smtplib
import ssl
import sys
import threading
from email.message import EmailMessage


def main():
    host, port, user, password, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    threads = int(sys.argv[6]) if len(sys.argv) > 6 else 4
    batch = int(sys.argv[7]) if len(sys.argv) > 7 else 10
    stop = threading.Event()
    lock = threading.Lock()
    out = {"acked": [], "refused": 0, "unexpected": [], "batches": 0}

    def record(key, value):
        with lock:
            if key == "refused":
                out["refused"] += 1
                out["unexpected"].append(value)
            else:
                out[key].append(value)

    def worker(t):
        b = 0
        while not stop.is_set():
            try:
                conn = smtplib.SMTP(host, port, timeout=60)
            except (ConnectionRefusedError, ConnectionResetError) as e:
                record("refused", "connect: %r" % e)
                continue
            except Exception as e:
                record("unexpected", "connect: %r" % e)
                continue
            tok = None
            try:
                conn.starttls(context=ssl._create_unverified_context())
                conn.login(user, password)
                for i in range(batch):
                    tok = "%s-t%d-b%d-m%d" % (prefix, t, b, i)
                    msg = EmailMessage()
                    msg["From"] = "john@example.com"
                    msg["To"] = "client@example.org"
                    msg["Subject"] = tok
                    msg["Message-Id"] = "<%s@odoo.example.com>" % tok
                    msg.set_content("%s\n%s\n" % (tok, "z" * 2000))
                    refused = conn.send_message(msg, from_addr="bounce@example.com", to_addrs=["client@example.org"])
                    if refused:
                        record("unexpected", "%s: recipients refused %r" % (tok, refused))
                    else:
                        record("acked", tok)
                conn.quit()
            except smtplib.SMTPResponseException as e:
                record("unexpected", "%s: %d %s" % (tok, e.smtp_code, e.smtp_error.decode(errors="replace")))
                conn.close()
            except Exception as e:
                record("unexpected", "%s: %r" % (tok, e))
                conn.close()
            b += 1
            with lock:
                out["batches"] += 1
                n = len(out["acked"])
            print("progress %d" % n, file=sys.stderr, flush=True)

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in ts:
        th.start()
    sys.stdin.read()
    stop.set()
    for th in ts:
        th.join()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
