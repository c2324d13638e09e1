"""The documents bucket: issued invoices' PDF, XML and CSVs, and the cycle's run chunks.

    invoices/{tenant}/{number}/{number}.pdf | .xml | -lines.csv | -summary.csv | -cdrs.csv
    runs/{tenant}/{period}/{scope}/chunk-NNNN.json

The bucket is versioned: a document is written only when its bytes differ from what is
stored (a re-run renders the same bytes, so it writes nothing and no version piles up).
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.shared.settings import settings
from functions.store import NotFoundError, client


def _bucket() -> str:
    return settings().documents_bucket


def get(key: str) -> bytes:
    try:
        return client("s3").get_object(Bucket=_bucket(), Key=key)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            raise NotFoundError(f"no document {key!r}") from None
        raise


def put(key: str, body: bytes, content_type: str) -> None:
    """Store `body` under `key` unless those exact bytes are there already."""
    digest = hashlib.sha256(body).hexdigest()
    s3 = client("s3")
    try:
        if s3.head_object(Bucket=_bucket(), Key=key).get("Metadata", {}).get("sha256") == digest:
            return
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.put_object(
        Bucket=_bucket(),
        Key=key,
        Body=body,
        ContentType=content_type,
        Metadata={"sha256": digest},
    )


def presigned_url(key: str, expires_seconds: int = 3600, *, filename: str | None = None) -> str:
    """A GET link to a stored document, valid `expires_seconds`; with `filename`, the link's
    answer asks the browser to save it under that name."""
    params = {"Bucket": _bucket(), "Key": key}
    if filename is not None:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    s3 = client("s3")
    signer = _signer(s3.meta.region_name, s3.meta.endpoint_url)
    return signer.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_seconds)


@cache
def _signer(region: str, endpoint: str) -> Any:
    """An S3 client that signs links with SigV4 (botocore signs them with SigV2 in us-east-1
    unless told, and buckets made since 2020 refuse SigV2), at the store client's endpoint.
    Signing is local: this client never sends a request."""
    return boto3.session.Session().client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4"),
    )


def list_keys(prefix: str) -> list[str]:
    keys = []
    for page in (
        client("s3").get_paginator("list_objects_v2").paginate(Bucket=_bucket(), Prefix=prefix)
    ):
        keys += [entry["Key"] for entry in page.get("Contents", [])]
    return keys
