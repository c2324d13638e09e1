"""Outgoing e-mail through SES v2, from the stack's verified identity (settings().mail_from).

The signature is the one the invoice sender uses (`send`, keyword arguments), so dunning
notices and invoices go out the same way: the brand as display name, the seller's address as
Reply-To (a white-label reseller's customers answer the reseller). SES has no idempotency
key: callers claim a message before sending it.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import formataddr

from functions.shared.settings import settings
from functions.store import client


def send(
    *,
    display_name: str,
    to: str,
    reply_to: str | None,
    subject: str,
    text: str,
    attachments: Sequence[tuple[str, bytes, str]] = (),
) -> str:
    """Send one message (attachments: (file name, bytes, content type)); SES's message id."""
    message: dict = {
        "Subject": {"Data": subject, "Charset": "UTF-8"},
        "Body": {"Text": {"Data": text, "Charset": "UTF-8"}},
    }
    if attachments:
        message["Attachments"] = [
            {
                "FileName": name,
                "RawContent": body,
                "ContentType": content_type,
                "ContentDisposition": "ATTACHMENT",
                "ContentTransferEncoding": "BASE64",
            }
            for name, body, content_type in attachments
        ]
    request: dict = {
        "FromEmailAddress": formataddr((display_name, settings().mail_from)),
        "Destination": {"ToAddresses": [to]},
        "Content": {"Simple": message},
    }
    if reply_to:
        request["ReplyToAddresses"] = [reply_to]
    return client("sesv2").send_email(**request)["MessageId"]
