"""Secrets Manager: a tenant's Stripe webhook signing secret. Never logged, never cached
across tenants (the key is the tenant's own secret name)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from functions.store import check_name, client


def stripe_webhook_secret_name(tenant: str) -> str:
    return f"tollgate/{check_name('tenant', tenant)}/stripe-webhook-secret"


def stripe_webhook_secret(tenant: str) -> str | None:
    """The tenant's `whsec_...` secret; None when the tenant has none (no such endpoint)."""
    try:
        response = client("secretsmanager").get_secret_value(
            SecretId=stripe_webhook_secret_name(tenant)
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise
    return response.get("SecretString")
