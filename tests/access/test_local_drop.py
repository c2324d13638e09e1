"""On the local stack: a switch gets its credentials from moto's IAM and STS, drops a file
with them, and the pipeline ingests and rates it like any other drop."""

from __future__ import annotations

import json

import boto3
import pytest

from functions.cli import main
from functions.shared.settings import settings
from tests.conftest import local_stack
from tests.pipeline.carrier import FIRST_FILE, SWITCH, TENANT, set_up_carrier


@pytest.fixture
def stack(aws_environment):
    with local_stack() as running:
        yield running


def test_a_switch_drops_with_its_own_credentials_on_the_local_stack(stack, tmp_path, capsys):
    set_up_carrier(tmp_path)
    capsys.readouterr()
    assert main(["switch", "credentials", TENANT, SWITCH, "--json"]) == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["prefix"] == f"incoming/{TENANT}/{SWITCH}/"
    switch = boto3.session.Session(
        aws_access_key_id=issued["access_key_id"],
        aws_secret_access_key=issued["secret_access_key"],
        aws_session_token=issued["session_token"],
        region_name=issued["region"],
    )
    role = issued["role_arn"].rsplit("/", 1)[1]
    identity = switch.client("sts").get_caller_identity()["Arn"]
    assert identity == f"arn:aws:sts::123456789012:assumed-role/{role}/{role}"
    switch.client("s3").put_object(
        Bucket=issued["bucket"], Key=f"{issued['prefix']}first.csv", Body=FIRST_FILE.encode()
    )
    stack.wait_idle(timeout=60)

    assert list(stack.runner.errors) == []
    capsys.readouterr()  # what the handlers printed (their metrics)
    assert main(["file", "status", TENANT, "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert (status["file"], status["status"], status["rows"], status["rated"]) == (
        "first.csv",
        "done",
        7,
        4,
    )
    assert issued["bucket"] == settings().cdr_bucket
