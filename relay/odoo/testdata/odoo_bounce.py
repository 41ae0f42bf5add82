# Reads a message on stdin the way Odoo 17/18 read an incoming bounce
# (mail/models/mail_thread.py: message_process's parse with policy SMTP,
# _detect_is_bounce's content-type and MAILER-DAEMON tests,
# _message_parse_extract_bounce) and prints what Odoo would extract, as JSON.
import email, json, re, sys
from email import policy
from email.message import EmailMessage

msgid_re = re.compile(r'<[^<>]+>')

raw = sys.stdin.buffer.read()
message = email.message_from_bytes(raw, policy=policy.SMTP)
assert isinstance(message, EmailMessage)
out = {'message_id': message.get('Message-Id', ''), 'content_type': message.get_content_type()}
frm = email.utils.getaddresses([str(message.get('From', ''))])
out['from_mailer_daemon'] = bool(frm) and frm[0][1].split('@', 1)[0].lower() == 'mailer-daemon'
out['to'] = [a for _, a in email.utils.getaddresses([str(message.get('To', ''))])]

email_part = next((p for p in message.walk() if p.get_content_type() in {'message/rfc822', 'text/rfc822-headers'}), None)
dsn_part = next((p for p in message.walk() if p.get_content_type() == 'message/delivery-status'), None)
bounced_email = False
if dsn_part and len(dsn_part.get_payload()) > 1:
    dsn = dsn_part.get_payload()[1]
    final = str(dsn.get('Final-Recipient', ''))
    if final and ';' in final:
        bounced_email = final.split(';', 1)[1].strip().lower()
    out['status'] = str(dsn.get('Status', ''))
out['bounced_email'] = bounced_email
ids = []
if email_part:
    if email_part.get_content_type() == 'text/rfc822-headers':
        payload = email.message_from_string(email_part.get_content(), policy=policy.SMTP)
    else:
        payload = email_part.get_payload()[0]
    ids = msgid_re.findall(str(payload.get('Message-Id', '')))
out['bounced_msg_ids'] = ids
body = next((p for p in message.walk() if p.get_content_type() == 'text/plain'), None)
out['body'] = body.get_content() if body else ''
print(json.dumps(out))
