#!/usr/bin/env python3
"""What Odoo 17/18 shows an admin, from a relay's replies: the calls of
ir.mail_server.connect(), test_smtp_connection() and send_email() and the
error handling of mail.mail.send()/_send(), with Python's smtplib exactly as
Odoo calls it (shared/reference/odoo.md sections 1 and 4).

  odoo_shows.py test HOST PORT none|starttls|ssl USER PASSWORD FROM [TIMEOUT]
      the "Test Connection" button: prints {"shown": the notification text}
  odoo_shows.py send HOST PORT none|starttls|ssl USER PASSWORD FROM TO[,TO] [HEADER_FROM] [SIZE]
      one mail.mail sent by the mail queue: prints {"state": "sent" or
      "exception", "shown": its failure_reason (what the mail's red envelope
      and the Technical > Emails list show)}

USER "" means no authentication. TIMEOUT is Odoo's SMTP_TIMEOUT (60 s); tests
give less. It exits 0 unless the script itself failed."""
import json
import smtplib
import socket
import ssl
import sys
from email.message import EmailMessage
from email import policy


def connect(host, port, encryption, user, password, timeout):
    # ir_mail_server.connect(): SMTP_SSL for 'ssl', else SMTP; starttls()
    # with Odoo's ssl_context (None for login authentication: smtplib's
    # unverified default); login() only with a user name; then EHLO if none
    # was sent.
    if encryption == "ssl":
        conn = smtplib.SMTP_SSL(host, port, timeout=timeout, context=None)
    else:
        conn = smtplib.SMTP(host, port, timeout=timeout)
    if encryption == "starttls":
        conn.starttls(context=None)
    if user:
        conn.login(user, password or "")
    conn.ehlo_or_helo_if_needed()
    return conn


def test(host, port, encryption, user, password, email_from, timeout):
    # ir_mail_server.test_smtp_connection(), with its exception handling in
    # its order; UserError texts are the notification Odoo shows.
    smtp = None
    try:
        smtp = connect(host, port, encryption, user, password, timeout)
        code, repl = smtp.mail(email_from)
        if code != 250:
            return "The server refused the sender address (%s) with error %s" % (email_from, repl)
        email_to = "noreply@odoo.com"
        code, repl = smtp.rcpt(email_to)
        if code not in (250, 251):
            return "The server refused the test recipient (%s) with error %s" % (email_to, repl)
        smtp.putcmd("data")
        code, repl = smtp.getreply()
        if code != 354:
            return "The server refused the test connection with error %s" % repl
        return "Connection Test Successful!"
    except UnicodeError as e:
        return "Invalid server name!\n %s" % e
    except (socket.gaierror, socket.timeout) as e:
        return "No response received. Check server address and port number.\n %s" % e
    except smtplib.SMTPServerDisconnected as e:
        return "The server has closed the connection unexpectedly. Check configuration served on this port number.\n %s" % e
    except smtplib.SMTPResponseException as e:
        return "Server replied with following exception:\n %s" % e
    except smtplib.SMTPNotSupportedError as e:
        return "An option is not supported by the server:\n %s" % e
    except smtplib.SMTPException as e:
        return "An SMTP exception occurred. Check port number and connection security type.\n %s" % e
    except ssl.SSLError as e:
        return "An SSL exception occurred. Check connection security type.\n %s" % e
    except Exception as e:
        return "Connection Test Failed! Here is what we got instead:\n %s" % e
    finally:
        if smtp is not None:
            try:
                smtp.close()  # no QUIT, no '.': Odoo just closes
            except Exception:
                pass


def exception_to_unicode(e):
    # odoo.tools.exception_to_unicode
    if getattr(e, "args", ()):
        return "\n".join(str(a) for a in e.args)
    return str(e)


def message(header_from, to, size):
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = header_from
    msg["To"] = ", ".join(to)
    msg["Subject"] = "Invoice INV/2026/0042"
    msg["Return-Path"] = "bounce@example.com"
    msg.set_content("Hello,\n" + "x" * max(size, 0) + "\n")
    return msg


def send(host, port, encryption, user, password, email_from, to, header_from, size, timeout):
    # mail.mail.send(): connect() once for the batch; a failure there puts
    # every mail of the batch in exception with exception_to_unicode(exc).
    try:
        smtp = connect(host, port, encryption, user, password, timeout)
    except Exception as exc:
        return {"state": "exception", "stage": "connect", "shown": exception_to_unicode(exc)}
    # send_email(): send_message(); anything but a disconnection becomes a
    # MailDeliveryException, whose args _send() writes as failure_reason.
    try:
        smtp.send_message(message(header_from, to, size), email_from, to)
    except smtplib.SMTPServerDisconnected as e:
        return {"state": "exception", "stage": "disconnected", "shown": str(e)}
    except Exception as e:
        msg = "Mail delivery failed via SMTP server '%s'.\n%s: %s" % (None, e.__class__.__name__, e)
        return {"state": "exception", "stage": "send", "shown": exception_to_unicode(Exception("Mail Delivery Failed", msg))}
    finally:
        try:
            smtp.quit()
        except Exception:
            pass
    # Recipients refused at RCPT while others were accepted: send_message
    # returns them and Odoo ignores it; the mail is "sent".
    return {"state": "sent", "shown": ""}


def main():
    mode, host, port, enc, user, password, email_from = sys.argv[1:8]
    port = int(port)
    if mode == "test":
        timeout = float(sys.argv[8]) if len(sys.argv) > 8 else 60
        res = {"shown": test(host, port, enc, user, password, email_from, timeout)}
    else:
        to = sys.argv[8].split(",")
        header_from = sys.argv[9] if len(sys.argv) > 9 and sys.argv[9] else "John <john@example.com>"
        size = int(sys.argv[10]) if len(sys.argv) > 10 else 0
        res = send(host, port, enc, user, password, email_from, to, header_from, size, 60)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
