"""Issue 4 §3, retention: what infra/template.yaml keeps, how long, and where money can be
recovered. Lifecycle rules are checked against the real keys the adapters write."""

from __future__ import annotations

import datetime as dt
from typing import Any

from functions.local.provision import load_template
from functions.store import lake

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
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


def _expires_after(rules: list[dict[str, Any]]) -> int | None:
    days = [r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r]
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


def test_quarantine_is_kept_until_reviewed():
    rules = _applying("LakeBucket", lake.table_key("quarantine", "acme", DAY, FILE_ID))
    assert _expires_after(rules) is None
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


def _api_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's LifecycleConfiguration rule -> PutBucketLifecycleConfiguration's."""
    api: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"]}
    api["Filter"] = {"Prefix": _prefix(rule)}
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": rule["ExpirationInDays"]}
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
