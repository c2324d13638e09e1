"""The errors Chalice answers itself, in the API's shape (functions/api/guards.py)."""

from __future__ import annotations

import pytest

from functions.api import guards


def test_a_method_a_route_lacks_is_405_method_not_allowed(world):
    headers = {"Authorization": f"Bearer {world.keys['admin']}"}
    answer = world.http.request("DELETE", "/v1/me", headers=headers)
    assert answer.status_code == 405
    assert answer.json_body == {
        "code": "method_not_allowed",
        "message": "Unsupported method: DELETE",
    }
    assert answer.headers["Allow"] == "GET"
    assert answer.headers["Content-Type"] == "application/json"


def test_a_body_of_another_media_type_is_415_unsupported_media_type(world):
    headers = {"Content-Type": "text/plain"}
    answer = world.http.post("/v1/sessions", headers=headers, body=b"user=x")
    assert answer.status_code == 415
    assert answer.json_body == {
        "code": "unsupported_media_type",
        "message": "Unsupported media type: text/plain",
    }


def test_an_uncaught_exception_is_500_internal_error_and_logged(world, monkeypatch, caplog):
    from functions.api import handler

    def broken(request):
        raise RuntimeError("the secret detail")

    monkeypatch.setattr(handler, "me", broken)
    with caplog.at_level("ERROR"):
        answer = world.get("/v1/me", "admin")
    assert answer.status_code == 500
    assert answer.json_body == {
        "code": "internal_error",
        "message": "internal error; it has been logged",
    }
    assert b"secret detail" not in answer.body
    assert "the secret detail" in caplog.text


def test_the_api_s_own_answers_pass_unchanged(world):
    answer = world.get("/v1/accounts?limit=0", "admin")
    assert answer.json_body["code"] == "bad_parameter"
    assert world.get("/v1/me", "admin").json_body["role"] == "tenant-admin"


@pytest.mark.parametrize(
    ("code", "snake"),
    [
        ("MethodNotAllowedError", "method_not_allowed"),
        ("UnsupportedMediaType", "unsupported_media_type"),
        ("BadRequest", "bad_request"),
        ("InternalServerError", "internal_error"),
    ],
)
def test_codes_become_snake_case(code, snake):
    assert guards._snake(code) == snake
