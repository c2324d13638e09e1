"""CloudWatch: the pipeline's metrics (EMF, written by the handlers) and per-switch alarms.

Each processed file becomes one Embedded Metric Format record in its function's log: metrics
under namespace `Tollgate` with dimensions (service, tenant, switch), plus the same values
under (service) alone for the stack's alarms, which cannot name tenants. The file id and the
correlation id are record properties, not dimensions: a dimension per file would make a
CloudWatch metric per file (billed monthly each) and no alarm could name it; Logs Insights
still finds each file's record by them. infra/package.yaml alarms on these names and draws
them on the dashboard (tests/infra/test_alarms.py checks they agree).

A switch that should send files every N hours gets its own alarm on `FilesReceived`
(`put_switch_silence_alarm`): no data point for N hours counts as breaching.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_lambda_powertools.metrics import EphemeralMetrics

from functions.store import NotFoundError, check_name, client

NAMESPACE = "Tollgate"
INGEST = "ingest"  # the `service` dimension of what the ingest function emits
RATE = "rate"

# ingest, once per new drop (a redelivered drop emits nothing)
FILES_RECEIVED = "FilesReceived"
FILES_REJECTED = "FilesRejected"
CDRS_IN = "CdrsIn"
CDRS_QUARANTINED = "CdrsQuarantined"
QUARANTINE_SHARE = "QuarantineShare"  # percent of the file's rows, 2 decimals
# rate, once per file that reaches `done`
FILES_RATED = "FilesRated"
CDRS_RATED = "CdrsRated"
CDRS_UNRATED = "CdrsUnrated"
CDRS_DUPLICATE = "CdrsDuplicate"
RATING_LAG = "RatingLag"  # seconds from the file's ingest record to done

UNITS = {
    FILES_RECEIVED: "Count",
    FILES_REJECTED: "Count",
    CDRS_IN: "Count",
    CDRS_QUARANTINED: "Count",
    QUARANTINE_SHARE: "Percent",
    FILES_RATED: "Count",
    CDRS_RATED: "Count",
    CDRS_UNRATED: "Count",
    CDRS_DUPLICATE: "Count",
    RATING_LAG: "Seconds",
}
EMITTED_BY = {
    INGEST: (FILES_RECEIVED, FILES_REJECTED, CDRS_IN, CDRS_QUARANTINED, QUARANTINE_SHARE),
    RATE: (FILES_RATED, CDRS_RATED, CDRS_UNRATED, CDRS_DUPLICATE, RATING_LAG),
}
FILE_DIMENSIONS = ("service", "tenant", "switch")
FLEET_DIMENSIONS = ("service",)

# CloudWatch caps an alarm's evaluation range at 7 days for periods of an hour or more.
MAX_SILENCE_HOURS = 168


def put_file_metrics(
    service: str,
    tenant: str,
    switch: str,
    file_id: str,
    values: Mapping[str, float],
    **properties: str,
) -> None:
    """Print one file's metrics as one EMF record (CloudWatch Logs turns it into metrics)."""
    unknown = set(values) - set(EMITTED_BY[service])
    if unknown:
        raise ValueError(f"{service} does not emit {sorted(unknown)}")
    # EphemeralMetrics keeps its state per instance; Metrics shares it between all instances
    # in the process, which would mix files when the local stack runs both handlers at once.
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=service)
    metrics.add_dimension(name="tenant", value=tenant)
    metrics.add_dimension(name="switch", value=switch)
    metrics.add_dimensions(service=service)
    for name, value in values.items():
        metrics.add_metric(name=name, unit=UNITS[name], value=value)
    metrics.add_metadata(key="file_id", value=file_id)
    for key, value in properties.items():
        metrics.add_metadata(key=key, value=value)
    metrics.flush_metrics()


# --- authorization answered without the store ----------------------------------------------

AUTHZ = "authz"  # the `service` dimension of the authorization's fallback records
AUTHZ_FALLBACKS = "AuthzFallbacks"  # answers by a tenant's fallback (or STOPs not recorded)


def put_authz_fallback(
    tenant: str, outcome: str, reason: str, properties: Mapping[str, object]
) -> None:
    """One EMF record of an authorization the store could not answer in time: metric
    AuthzFallbacks under (service, tenant, outcome) and (service) alone, outcome `open`,
    `closed` or `stop_failed`; why and the call as record properties (Logs Insights finds
    each call; a dimension per call would make a metric per call)."""
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=AUTHZ)
    metrics.add_dimension(name="tenant", value=tenant)
    metrics.add_dimension(name="outcome", value=outcome)
    metrics.add_dimensions(service=AUTHZ)
    metrics.add_metric(name=AUTHZ_FALLBACKS, unit="Count", value=1)
    metrics.add_metadata(key="reason", value=reason)
    for key, value in properties.items():
        if key not in ("tenant", "outcome"):
            metrics.add_metadata(key=key, value=value)
    metrics.flush_metrics()


# --- per-switch silence alarms --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SilenceAlarm:
    """An alarm that fires when a switch sent no file for `hours` hours."""

    name: str
    tenant: str
    switch: str
    hours: int
    actions: tuple[str, ...] = ()


def silence_alarm_name(tenant: str, switch: str) -> str:
    return f"{NAMESPACE}/{check_name('tenant', tenant)}/{check_name('switch', switch)}/no-files"


def put_switch_silence_alarm(
    tenant: str, switch: str, hours: int, *, actions: tuple[str, ...] = ()
) -> SilenceAlarm:
    """Create or replace the switch's alarm: FilesReceived summed per hour, alarming when
    every one of the last `hours` hours had none. `actions`: SNS topic ARNs to notify."""
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_SILENCE_HOURS:
        raise ValueError(f"silence hours must be a whole number from 1 to {MAX_SILENCE_HOURS}")
    name = silence_alarm_name(tenant, switch)
    client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        AlarmDescription=(
            f"Switch {switch} of tenant {tenant} sent no CDR file for {hours} hour(s): "
            "check the switch's CDR export and its upload credentials."
        ),
        Namespace=NAMESPACE,
        MetricName=FILES_RECEIVED,
        Dimensions=[
            {"Name": "service", "Value": INGEST},
            {"Name": "tenant", "Value": tenant},
            {"Name": "switch", "Value": switch},
        ],
        Statistic="Sum",
        Period=3600,
        EvaluationPeriods=hours,
        DatapointsToAlarm=hours,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        # Ingest emits FilesReceived only when a file arrives: an hour without one has no
        # data point at all, and that is exactly what must count against the switch.
        TreatMissingData="breaching",
        ActionsEnabled=True,
        AlarmActions=list(actions),
        OKActions=list(actions),
        Tags=[{"Key": "tenant", "Value": tenant}, {"Key": "switch", "Value": switch}],
    )
    return SilenceAlarm(name, tenant, switch, hours, tuple(actions))


def delete_switch_silence_alarm(tenant: str, switch: str) -> None:
    """Stop watching a switch; NotFoundError if it was not watched."""
    name = silence_alarm_name(tenant, switch)
    cloudwatch = client("cloudwatch")
    if not cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
        raise NotFoundError(f"switch {switch!r} of tenant {tenant!r} is not watched")
    cloudwatch.delete_alarms(AlarmNames=[name])
