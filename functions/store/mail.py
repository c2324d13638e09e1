"""Outgoing e-mail through SES v2: invoices with their PDF and XML, dunning notices.

The sender is the stack's verified identity (settings().mail_from); a reseller's white-label
mail shows the reseller's brand as the display name and its own address as Reply-To, so its
customers answer the reseller, never the carrier. SES has no idempotency key: callers claim
a message before sending it (functions/store/billing.claim_delivery).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from email.utils import formataddr

from botocore.exceptions import ClientError

from functions.invoice.cycle import MailNotSent
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
    tags: dict[str, str] | None = None,
) -> str:
    """Send one message; SES's message id. MailNotSent when SES refused it (an unverified
    sender, a suppressed address, throttling): then it was certainly not sent."""
    message = {
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
    request = {
        "FromEmailAddress": formataddr((display_name, settings().mail_from)),
        "Destination": {"ToAddresses": [to]},
        "Content": {"Simple": message},
    }
    if reply_to:
        request["ReplyToAddresses"] = [reply_to]
    if tags:
        # SES puts them on its bounce and complaint events: how a bounce finds its invoice
        request["EmailTags"] = [{"Name": k, "Value": v} for k, v in sorted(tags.items())]
    configuration_set = os.environ.get("TOLLGATE_MAIL_CONFIGURATION_SET")
    if configuration_set:  # its event destination sends bounces to the bus (docs/deploy.md)
        request["ConfigurationSetName"] = configuration_set
    try:
        return client("sesv2").send_email(**request)["MessageId"]
    except ClientError as error:
        raise MailNotSent(f"SES refused the message to {to}: {error}") from error
