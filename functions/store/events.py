"""EventBridge: what rating and billing tell the rest of the platform (fraud rules,
dashboards, the switch's route blocking)."""

from __future__ import annotations

import json

from functions.shared.settings import settings
from functions.store import StoreError, client

SOURCE = "tollgate.rate"
FILE_RATED = "FileRated"
BILLING_SOURCE = "tollgate.billing"
CREDIT_LIMIT_WARNING = "CreditLimitWarning"
ACCOUNT_SUSPENDED = "AccountSuspended"
ACCOUNT_RESUMED = "AccountResumed"
FRAUD_SOURCE = "tollgate.fraud"
FRAUD_ALERT = "FraudAlert"


def _put(source: str, detail_type: str, detail: dict, subject: object) -> None:
    response = client("events").put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail, separators=(",", ":")),
                "EventBusName": settings().event_bus,
            }
        ]
    )
    if response.get("FailedEntryCount"):
        failure = response["Entries"][0]
        raise StoreError(
            f"EventBridge refused {detail_type} for {subject}: "
            f"{failure.get('ErrorCode')} {failure.get('ErrorMessage')}"
        )


def publish_file_rated(detail: dict) -> None:
    """One event per rated file. Delivery is at least once: consumers key on `file_id`."""
    _put(SOURCE, FILE_RATED, detail, detail.get("file_id"))


def publish_billing_event(detail_type: str, detail: dict) -> None:
    """CreditLimitWarning, AccountSuspended, AccountResumed: at least once; consumers key on
    (tenant, account, detail type, day)."""
    _put(BILLING_SOURCE, detail_type, detail, detail.get("account"))


def publish_fraud_alert(detail: dict) -> None:
    """One event per fraud alert raised or escalated (route blocking, dashboards, a tenant's
    own systems). Delivery is at least once: consumers key on (alert_id, severity)."""
    _put(FRAUD_SOURCE, FRAUD_ALERT, detail, detail.get("alert_id"))


ASSURANCE_SOURCE = "tollgate.assurance"
ASSURANCE_ALERT = "Tollgate Assurance Alert"


def publish_assurance_alert(detail: dict) -> None:
    """One event per (tenant, switch, day, check) whose threshold the daily revenue assurance
    check found passed (functions.ingest.assurance): consumers key on `alert_id`."""
    _put(ASSURANCE_SOURCE, ASSURANCE_ALERT, detail, detail.get("alert_id"))
