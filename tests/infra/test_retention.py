"""Issue 4 §3, retention: what infra/template.yaml keeps, how long, and where money can be
recovered. Lifecycle rules are checked against the real keys the adapters write."""

from __future__ import annotations

import datetime as dt
from typing import Any

from functions.local.provision import load_template
from functions.store import lake

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
RETENTION = TEMPLATE["Parameters"]["QuarantineRetentionDays"]
THIRTEEN_MONTHS = 396  # days: 13 x 31 − a margin nobody needs
DAY = dt.date(2024, 5, 1)
FILE_ID = "0123456789abcdef0123456789abcdef"


def _rules(bucket: str) -> list[dict[str, Any]]:
    return RESOURCES[bucket]["Properties"]["LifecycleConfiguration"]["Rules"]


def _prefix(rule: dict[str, Any]) -> str:
    if "Prefix" in rule:
        return rule["Prefix"]
    rule_filter = rule.get("Filter") or {}
    return rule_filter.get("Prefix") or (rule_filter.get("And") or {}).get("Prefix") or ""


def _applying(bucket: str, key: str) -> list[dict[str, Any]]:
    """Enabled rules whose filter covers `key` (a rule with a tag filter counts: it may)."""
    return [r for r in _rules(bucket) if r["Status"] == "Enabled" and key.startswith(_prefix(r))]


def _days(value: int | dict[str, str], parameters: dict[str, str] | None = None) -> int:
    """A number of days, or a Ref to a template parameter (its default unless given)."""
    if isinstance(value, dict):
        name = value["Ref"]
        return int((parameters or {}).get(name, TEMPLATE["Parameters"][name]["Default"]))
    return value


def _expires_after(
    rules: list[dict[str, Any]], parameters: dict[str, str] | None = None
) -> int | None:
    days = [_days(r["ExpirationInDays"], parameters) for r in rules if "ExpirationInDays" in r]
    assert not [r for r in rules if "ExpirationDate" in r], "a fixed expiry date"
    return min(days) if days else None


def _cheaper_after(rules: list[dict[str, Any]]) -> dict[str, int]:
    return {
        t["StorageClass"]: t["TransitionInDays"] for r in rules for t in r.get("Transitions", [])
    }


def test_raw_cdrs_kept_13_months_at_least_and_cheaper_after_90_days():
    key = lake.cdr_key("acme", "switch-1", "cdr-2024-05-01.csv")
    rules = _applying("CdrBucket", key)
    expires = _expires_after(rules)
    assert expires is None or expires >= THIRTEEN_MONTHS
    assert _cheaper_after(rules) == {"STANDARD_IA": 90}


def test_normalised_and_rated_cdrs_kept_13_months_at_least_and_cheaper_after_90_days():
    for area in ("normalized", "rated", "charges"):
        rules = _applying("LakeBucket", lake.table_key(area, "acme", DAY, FILE_ID))
        expires = _expires_after(rules)
        assert expires is None or expires >= THIRTEEN_MONTHS, area
        assert _cheaper_after(rules) == {"STANDARD_IA": 90}, area


def test_quarantined_rows_expire_after_the_configured_days():
    """Issue 9 §5: quarantine/ kept the raw rows, calling numbers included (personal data),
    for ever; they now expire after QuarantineRetentionDays (90 unless the stack says)."""
    rules = _applying("LakeBucket", lake.table_key("quarantine", "acme", DAY, FILE_ID))
    assert (RETENTION["Type"], RETENTION["Default"], RETENTION["MinValue"]) == ("Number", 90, 1)
    assert _expires_after(rules) == 90
    assert _expires_after(rules, {"QuarantineRetentionDays": "30"}) == 30
    assert _cheaper_after(rules) == {}


def test_what_rating_reads_back_never_expires():
    keys = [
        lake.deck_key("acme", "customer-1", 3),
        lake.claim_set_key("acme", "switch-1", "2024-05-01T13", 7, FILE_ID),
        lake.claim_result_key("acme", "switch-1", "2024-05-01T13", FILE_ID, 7),
        lake.rerate_pending_key("charges", "acme", DAY, FILE_ID),
        lake.rerate_pending_key("rated", "acme", DAY, FILE_ID),
    ]
    for key in keys:
        assert _expires_after(_applying("LakeBucket", key)) is None, key


def test_a_pricing_runs_staged_output_outlives_any_retry_and_then_expires():
    key = lake.staged_key("charges", "acme", DAY, FILE_ID, "run1")
    expires = _expires_after(_applying("LakeBucket", key))
    sqs_max_retention_days = 14  # the longest a rate request can wait for its retry
    assert expires is not None and expires > sqs_max_retention_days


def test_incomplete_uploads_are_aborted_in_both_buckets():
    for bucket in ("CdrBucket", "LakeBucket"):
        aborts = [r for r in _rules(bucket) if "AbortIncompleteMultipartUpload" in r]
        assert [(_prefix(r), r["AbortIncompleteMultipartUpload"]) for r in aborts] == [
            ("", {"DaysAfterInitiation": 7})
        ]


def test_buckets_and_tables_survive_the_stack():
    for name, resource in RESOURCES.items():
        if resource["Type"] in ("AWS::S3::Bucket", "AWS::DynamoDB::Table"):
            assert resource["DeletionPolicy"] == "Retain", name
            assert resource["UpdateReplacePolicy"] == "Retain", name


def test_tables_that_hold_money_or_its_guards_have_point_in_time_recovery():
    # balances; credit limits and decks; the claims that stop double charging
    for table in ("LedgerTable", "AccountsTable", "FilesTable"):
        spec = RESOURCES[table]["Properties"]["PointInTimeRecoverySpecification"]
        assert spec == {"PointInTimeRecoveryEnabled": True}, table


def _api_rule(rule: dict[str, Any], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """CloudFormation's LifecycleConfiguration rule -> PutBucketLifecycleConfiguration's."""
    api: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"]}
    api["Filter"] = {"Prefix": _prefix(rule)}
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": _days(rule["ExpirationInDays"], parameters)}
    if "Transitions" in rule:
        api["Transitions"] = [
            {"Days": t["TransitionInDays"], "StorageClass": t["StorageClass"]}
            for t in rule["Transitions"]
        ]
    if "AbortIncompleteMultipartUpload" in rule:
        api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    known = {"Id", "Status", "Prefix", "ExpirationInDays", "Transitions"}
    assert set(rule) <= known | {"AbortIncompleteMultipartUpload"}, sorted(rule)
    return api


def test_the_rules_are_valid_s3_lifecycle_requests(aws):
    """botocore validates each rule against the S3 API model; moto stores and returns it."""
    from functions.store import client

    s3 = client("s3")
    for bucket in ("CdrBucket", "LakeBucket"):
        name = f"retention-{bucket.lower()}"
        s3.create_bucket(Bucket=name)
        rules = [_api_rule(r) for r in _rules(bucket)]
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        stored = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        assert [r["ID"] for r in stored] == [r["ID"] for r in rules]


def test_the_lake_bucket_as_provisioned_expires_quarantine_after_the_parameter(aws):
    """The template's rules with QuarantineRetentionDays=30, put on a moto bucket and read
    back: the rule S3 holds for a quarantine key expires it after 30 days, and nothing the
    billing record keeps (normalized/, rated/, charges/) expires with it."""
    from functions.store import client

    s3 = client("s3")
    s3.create_bucket(Bucket="retention-quarantine")
    rules = [_api_rule(r, {"QuarantineRetentionDays": "30"}) for r in _rules("LakeBucket")]
    s3.put_bucket_lifecycle_configuration(
        Bucket="retention-quarantine", LifecycleConfiguration={"Rules": rules}
    )
    stored = s3.get_bucket_lifecycle_configuration(Bucket="retention-quarantine")["Rules"]

    def expiry(key: str) -> list[int]:
        return [
            r["Expiration"]["Days"]
            for r in stored
            if "Expiration" in r and key.startswith(r["Filter"]["Prefix"])
        ]

    assert expiry(lake.table_key("quarantine", "acme", DAY, FILE_ID)) == [30]
    for area in ("normalized", "rated", "charges"):
        assert expiry(lake.table_key(area, "acme", DAY, FILE_ID)) == [], area


def test_api_exports_expire_after_a_day_and_nothing_else_with_them():
    key = lake.export_key("acme", "cdrs-2024-05-01-2024-05-31.csv")
    assert _expires_after(_applying("LakeBucket", key)) == 1
    for area in ("normalized", "rated", "charges"):
        rules = _applying("LakeBucket", lake.table_key(area, "acme", DAY, FILE_ID))
        assert all(_prefix(r) != "exports/" for r in rules), area
