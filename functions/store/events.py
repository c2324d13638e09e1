"""EventBridge: what rating tells the rest of the platform (fraud rules, dashboards)."""

from __future__ import annotations

import json

from functions.shared.settings import settings
from functions.store import StoreError, client

SOURCE = "tollgate.rate"
FILE_RATED = "FileRated"


def publish_file_rated(detail: dict) -> None:
    """One event per rated file. Delivery is at least once: consumers key on `file_id`."""
    response = client("events").put_events(
        Entries=[
            {
                "Source": SOURCE,
                "DetailType": FILE_RATED,
                "Detail": json.dumps(detail, separators=(",", ":")),
                "EventBusName": settings().event_bus,
            }
        ]
    )
    if response.get("FailedEntryCount"):
        failure = response["Entries"][0]
        raise StoreError(
            f"EventBridge refused FileRated for {detail.get('file_id')}: "
            f"{failure.get('ErrorCode')} {failure.get('ErrorMessage')}"
        )
