"""The `atomic_items` fixture makes moto's UpdateItem one step, as DynamoDB's is.

moto's request handler deep-copies the stored item (for the old values) before it calls the
backend; another thread's write to the item in between made a full run fail once with
"dictionary changed size during iteration" (tests/store/test_accounts_store.py, concurrent
deck versions). With the fixture, no write to the item can land while an UpdateItem copies it.
"""

from __future__ import annotations

import threading

import boto3
import pytest
from moto.dynamodb import responses

TABLE = "atomic-items-test"


@pytest.fixture
def table(aws) -> object:
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "n": {"N": "0"}})
    return client


def test_no_write_lands_while_an_update_copies_the_item(table, atomic_items, monkeypatch):
    copying, other_done = threading.Event(), threading.Event()
    landed_during_copy = []
    deepcopy = responses.copy.deepcopy

    def slow_copy(value, *args, **kwargs):
        if not copying.is_set():  # the first UpdateItem's copy: let the other write try now
            copying.set()
            landed_during_copy.append(other_done.wait(timeout=0.3))
        return deepcopy(value, *args, **kwargs)

    monkeypatch.setattr(responses.copy, "deepcopy", slow_copy)

    def other_write() -> None:
        copying.wait(timeout=5)
        table.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET added = :v",
            ExpressionAttributeValues={":v": {"S": "x"}},
        )
        other_done.set()

    other = threading.Thread(target=other_write)
    other.start()
    table.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "a"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    other.join(timeout=5)
    assert landed_during_copy == [False]  # the other write waited for the whole UpdateItem
    item = table.get_item(TableName=TABLE, Key={"pk": {"S": "a"}})["Item"]
    assert (item["n"], item["added"]) == ({"N": "1"}, {"S": "x"})
