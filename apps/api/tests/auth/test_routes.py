"""Every route behind its scope: keys over real HTTP semantics, the admin routes, rate limits."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.asgi import app_client
from tests.auth.conftest import BOOTSTRAP_KEY, PEPPER
from tests.conftest import SettingsFactory

SYNTHESIZE = "/api/v1/voice/synthesize"
KEYS = "/api/v1/keys"
ADMIN = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
TEXT = {"text": "The open house starts at noon."}


def _auth(**fields: Any) -> dict[str, Any]:
    return {"pepper": PEPPER, "bootstrap_admin_key": BOOTSTRAP_KEY, **fields}


@pytest.fixture
async def guarded(make_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(auth=_auth())) as client:
        yield client


async def _key(client: httpx.AsyncClient, *scopes: str, **limits: int) -> str:
    body = {"name": "test", "scopes": list(scopes), **limits}
    created = await client.post(KEYS, json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code
    assert body["message"]
    return body


async def test_with_no_key_anywhere_a_loopback_service_is_open(client: httpx.AsyncClient) -> None:
    assert (await client.post(SYNTHESIZE, json=TEXT)).status_code == 200


async def test_every_route_but_health_ready_and_metrics_needs_a_key(
    guarded: httpx.AsyncClient, make_settings: SettingsFactory
) -> None:
    paths = create_app(make_settings()).openapi()["paths"]
    open_paths = {"/health", "/ready", "/metrics"}
    checked = 0
    for template, operations in paths.items():
        if template in open_paths:
            continue
        path = template.replace("{", "").replace("}", "")  # any value: refused before parsing
        for method, operation in operations.items():
            assert operation["security"] == [{"bearer": []}, {"apiKeyHeader": []}]
            response = await guarded.request(method.upper(), path, json={})
            _error(response, 401, "missing_api_key")
            assert response.headers["www-authenticate"].startswith("Bearer")
            checked += 1
    assert checked >= 20
    assert all("security" not in op for path in open_paths for op in paths[path].values())
    for path in ("/health", "/ready", "/metrics"):
        assert (await guarded.get(path)).status_code == 200


async def test_a_key_with_the_scope_passes_with_its_budget_in_ratelimit_headers(
    guarded: httpx.AsyncClient,
) -> None:
    key = await _key(guarded, "synthesize", requests_per_minute=100)

    as_bearer = await guarded.post(
        SYNTHESIZE, json=TEXT, headers={"Authorization": f"Bearer {key}"}
    )
    as_header = await guarded.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": key})

    assert as_bearer.status_code == as_header.status_code == 200
    assert as_bearer.headers["ratelimit-limit"] == "100"
    assert int(as_header.headers["ratelimit-remaining"]) == 98
    assert "ratelimit-reset" in as_header.headers


async def test_wrong_scope_is_403_and_bad_keys_are_401(guarded: httpx.AsyncClient) -> None:
    key = await _key(guarded, "analytics")
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")

    wrong_scope = await guarded.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": key})
    bad_secret = await guarded.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": forged})
    malformed = await guarded.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": "hunter2"})
    unknown = await guarded.post(
        SYNTHESIZE, json=TEXT, headers={"X-API-Key": "sv_zzzzzzzzzzzz_" + "C" * 43}
    )

    assert _error(wrong_scope, 403, "insufficient_scope")["details"] == {
        "required_scope": "synthesize"
    }
    _error(bad_secret, 401, "invalid_api_key")
    assert "form" in _error(malformed, 401, "invalid_api_key")["message"]
    _error(unknown, 401, "invalid_api_key")


async def test_admin_creates_lists_rotates_and_revokes_and_a_secret_is_shown_once(
    guarded: httpx.AsyncClient, make_settings: SettingsFactory
) -> None:
    key = await _key(guarded, "synthesize")
    key_id = key.split("_")[1]
    listed = (await guarded.get(KEYS, headers=ADMIN)).json()["keys"]
    assert [k["id"] for k in listed] == [key_id]
    assert key.split("_")[2] not in str(listed)

    rotated = await guarded.post(f"{KEYS}/{key_id}/rotate", json={"grace_s": 60}, headers=ADMIN)
    new = rotated.json()["key"]
    assert rotated.status_code == 200
    assert new != key
    for usable in (key, new):  # the old one within its grace period
        assert (await guarded.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": usable})).is_success
    quick = await guarded.post(f"{KEYS}/{key_id}/rotate", json={"grace_s": 0}, headers=ADMIN)
    newest = quick.json()["key"]
    rotated_out = await guarded.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": new})
    assert "rotated" in _error(rotated_out, 401, "invalid_api_key")["message"]

    # Another process sees the revocation at once.
    async with app_client(make_settings(auth=_auth())) as other:
        assert (await other.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": newest})).is_success
        revoked = await guarded.delete(f"{KEYS}/{key_id}", headers=ADMIN)
        refused = await other.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": newest})
    assert revoked.json()["revoked_at"] is not None
    assert "revoked" in _error(refused, 401, "invalid_api_key")["message"]
    _error(await guarded.get(f"{KEYS}/aaaaaaaaaaaa", headers=ADMIN), 404, "api_key_not_found")
    _error(await guarded.get(f"{KEYS}/NOT-AN-ID", headers=ADMIN), 422, "validation_error")


async def test_an_expired_key_is_refused(guarded: httpx.AsyncClient) -> None:
    created = await guarded.post(
        KEYS,
        json={"name": "brief", "scopes": ["synthesize"], "expires_in_days": 1e-5},
        headers=ADMIN,
    )
    await asyncio.sleep(1.0)  # 1e-5 days is under a second
    refused = await guarded.post(
        SYNTHESIZE, json=TEXT, headers={"X-API-Key": created.json()["key"]}
    )
    assert "expired" in _error(refused, 401, "invalid_api_key")["message"]


async def test_over_the_request_budget_is_429_with_retry_after(guarded: httpx.AsyncClient) -> None:
    key = await _key(guarded, "synthesize", requests_per_minute=2)
    headers = {"X-API-Key": key}
    answers = [await guarded.post(SYNTHESIZE, json=TEXT, headers=headers) for _ in range(3)]

    assert [a.status_code for a in answers[:2]] == [200, 200]
    _error(answers[2], 429, "rate_limited")
    assert int(answers[2].headers["retry-after"]) >= 1
    assert answers[2].headers["ratelimit-remaining"] == "0"


async def test_over_the_character_budget_is_429(guarded: httpx.AsyncClient) -> None:
    key = await _key(guarded, "synthesize", characters_per_minute=50)
    headers = {"X-API-Key": key}
    first = await guarded.post(
        SYNTHESIZE, json={"text": "A" * 10 + " is a fine street."}, headers=headers
    )
    second = await guarded.post(SYNTHESIZE, json={"text": "B" * 40 + " is long."}, headers=headers)

    assert first.status_code == 200
    _error(second, 429, "rate_limited")
    assert "Characters" in second.json()["error"]["message"]


async def test_repeated_bad_keys_from_one_address_are_slowed(
    make_settings: SettingsFactory,
) -> None:
    async with app_client(make_settings(auth=_auth(max_failures_per_minute=3))) as client:
        key = await _key(client, "synthesize")
        guesses = [
            await client.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": key[:-3] + f"{n:03d}"})
            for n in range(4)
        ]
        # Even the right key waits its turn from an address that keeps guessing.
        after = await client.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": key})

    assert [g.status_code for g in guesses[:3]] == [401, 401, 401]
    _error(guesses[3], 429, "too_many_failed_attempts")
    _error(after, 429, "too_many_failed_attempts")
    assert int(after.headers["retry-after"]) >= 1


async def test_keys_bad_input_is_a_422(guarded: httpx.AsyncClient) -> None:
    for body in (
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": []},
        {"name": "", "scopes": ["stream"]},
        {"name": "x", "scopes": ["stream"], "requests_per_minute": 0},
        {"name": "x", "scopes": ["stream"], "extra": 1},
    ):
        _error(await guarded.post(KEYS, json=body, headers=ADMIN), 422, "validation_error")
    key = await _key(guarded, "bulk")
    _error(await guarded.get(KEYS, headers={"X-API-Key": key}), 403, "insufficient_scope")
