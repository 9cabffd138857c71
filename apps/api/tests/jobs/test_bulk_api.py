"""The bulk, job and pre-generation routes as a client sees them, with no worker running.

The API publishes to the broker database; these tests read that queue directly and empty it
before and after each test, so that a worker started by a later module finds no stale chunks.
"""

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.catalog import catalog_phrases
from app.ops.local_redis import free_port
from app.tts.models import Language, Persona
from tests.asgi import app_client
from tests.conftest import SettingsFactory
from tests.jobs.conftest import QUEUE

BULK = "/api/v1/voice/streaming/synthesize/bulk"
PREGENERATE = "/api/v1/voice/streaming/pregenerate"
JOBS = "/api/v1/voice/streaming/jobs/"
SYNTHESIZE = "/api/v1/voice/synthesize"
JOB_IDS = "sv:jobs"
HANG_BOUND_S = 5.0


def listing(i: int) -> str:
    return f"Listing {i} has {i % 5 + 2} bedrooms and a garden."


def bulk_items(count: int) -> list[dict[str, Any]]:
    return [{"id": f"item-{i}", "text": listing(i)} for i in range(count)]


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.fixture
async def broker_redis(empty_broker: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(empty_broker)
    yield client
    await client.aclose()


@pytest.fixture
async def state_redis(fresh_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(fresh_redis)
    yield client
    await client.aclose()


@pytest.fixture
def queueing_client(jobs_client: httpx.AsyncClient, empty_broker: str) -> httpx.AsyncClient:
    """The app publishing to the (emptied) broker database."""
    return jobs_client


async def assert_nothing_queued(broker_redis: aioredis.Redis, state_redis: aioredis.Redis) -> None:
    assert await broker_redis.llen(QUEUE) == 0
    assert await state_redis.zcard(JOB_IDS) == 0


async def test_a_small_foreground_bulk_answers_every_items_audio_in_order(
    client: httpx.AsyncClient,
) -> None:
    items = [
        {"id": "welcome", "text": "Welcome to the open house.", "output_format": "mp3_44100_128"},
        {"id": "phone", "text": "Press one to schedule a visit.", "output_format": "ulaw_8000"},
        {"id": "spanish", "text": "¿Le gustaría agendar una visita?", "persona": "friendly"},
    ]

    response = await client.post(BULK, json={"items": items})

    assert response.status_code == 200, response.text
    outcomes = response.json()["items"]
    assert [o["id"] for o in outcomes] == ["welcome", "phone", "spanish"]
    assert [o["index"] for o in outcomes] == [0, 1, 2]
    for outcome in outcomes:
        assert outcome["status"] == "done", outcome
        assert outcome["error"] is None
        assert outcome["provider"] == "espeak"
        assert outcome["audio_duration_ms"] > 0
        assert outcome["audio_url"] is None
        assert base64.b64decode(outcome["audio_base64"])
    mp3 = base64.b64decode(outcomes[0]["audio_base64"])
    assert outcomes[0]["content_type"] == "audio/mpeg"
    assert mp3.startswith(b"ID3") or (mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0)
    assert outcomes[1]["content_type"] == "audio/basic"
    assert outcomes[2]["content_type"] == "audio/mpeg"


async def test_a_foreground_bulk_of_21_items_is_refused_and_told_to_use_background(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(BULK, json={"items": bulk_items(21)})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert "background" in error["message"]
    assert error["details"]["max_items"] == 20
    assert error["details"]["items"] == 21


@pytest.mark.parametrize(("count", "kind"), [(0, "too_short"), (1001, "too_long")])
async def test_a_bulk_of_no_items_or_more_than_1000_is_a_validation_error(
    client: httpx.AsyncClient, count: int, kind: str
) -> None:
    response = await client.post(BULK, json={"items": bulk_items(count), "background": True})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert [(d["loc"], d["type"]) for d in error["details"]] == [(["body", "items"], kind)]


@pytest.mark.parametrize(
    ("bad_item", "field"),
    [({"text": "   \n\t "}, "text"), ({"text": "Hello.", "persona": "grumpy"}, "persona")],
)
async def test_an_invalid_item_is_named_by_its_index_and_nothing_is_queued(
    queueing_client: httpx.AsyncClient,
    broker_redis: aioredis.Redis,
    state_redis: aioredis.Redis,
    bad_item: dict[str, str],
    field: str,
) -> None:
    items = bulk_items(10)
    items[7] = {"id": "item-7", **bad_item}

    response = await queueing_client.post(BULK, json={"items": items, "background": True})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert [d["loc"] for d in error["details"]] == [["body", "items", 7, field]]
    await assert_nothing_queued(broker_redis, state_redis)


async def test_a_repeated_item_id_is_refused_with_both_indices_and_nothing_is_queued(
    queueing_client: httpx.AsyncClient,
    broker_redis: aioredis.Redis,
    state_redis: aioredis.Redis,
) -> None:
    items = bulk_items(6)
    items[4]["id"] = "item-1"

    response = await queueing_client.post(BULK, json={"items": items, "background": True})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "duplicate_item_id"
    assert error["details"] == {"index": 4, "id": "item-1", "first_index": 1}
    await assert_nothing_queued(broker_redis, state_redis)


async def test_a_background_bulk_queues_one_message_per_chunk_and_shows_every_item_queued(
    queueing_client: httpx.AsyncClient, broker_redis: aioredis.Redis
) -> None:
    response = await queueing_client.post(BULK, json={"items": bulk_items(25), "background": True})

    assert response.status_code == 202, response.text
    accepted = response.json()
    job_id = accepted["job_id"]
    assert accepted["kind"] == "bulk"
    assert accepted["total"] == 25
    assert accepted["chunks"] == 3
    assert accepted["status_url"] == JOBS + job_id
    assert await broker_redis.llen(QUEUE) == 3

    status = (await queueing_client.get(accepted["status_url"])).json()
    assert status["status"] == "queued"
    assert status["kind"] == "bulk"
    assert status["total"] == 25
    assert status["counts"] == {"queued": 25, "done": 0, "failed": 0, "cached": 0}
    assert [(i["index"], i["id"], i["status"]) for i in status["items"]] == [
        (i, f"item-{i}", "queued") for i in range(25)
    ]
    assert all(i["audio_url"] is None for i in status["items"])

    page = await queueing_client.get(JOBS + job_id, params={"items_offset": 20, "items_limit": 10})
    assert page.status_code == 200
    assert page.json()["items_offset"] == 20
    assert [i["index"] for i in page.json()["items"]] == [20, 21, 22, 23, 24]

    too_many = await queueing_client.get(JOBS + job_id, params={"items_limit": 1001})
    assert too_many.status_code == 422
    assert error_of(too_many)["code"] == "validation_error"

    not_ready = await queueing_client.get(f"{JOBS}{job_id}/items/0/audio")
    assert not_ready.status_code == 409
    assert error_of(not_ready)["code"] == "item_not_ready"
    assert int(not_ready.headers["retry-after"]) > 0

    past_the_end = await queueing_client.get(f"{JOBS}{job_id}/items/25/audio")
    assert past_the_end.status_code == 404
    assert error_of(past_the_end)["code"] == "not_found"

    unknown = await queueing_client.get(JOBS + "job_unknown")
    assert unknown.status_code == 404
    assert error_of(unknown)["code"] == "job_not_found"
    unknown_audio = await queueing_client.get(JOBS + "job_unknown/items/0/audio")
    assert unknown_audio.status_code == 404
    assert error_of(unknown_audio)["code"] == "job_not_found"


async def test_with_the_broker_down_jobs_are_refused_at_once_and_live_synthesis_still_speaks(
    make_settings: SettingsFactory, state_redis: aioredis.Redis
) -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    async with app_client(make_settings(jobs={"broker_url": nobody})) as client:
        for url, body in [
            (BULK, {"items": bulk_items(5), "background": True}),
            (PREGENERATE, {"persona": "friendly", "language": "en"}),
        ]:
            started = time.monotonic()
            response = await client.post(url, json=body)
            elapsed = time.monotonic() - started

            assert response.status_code == 503, response.text
            assert error_of(response)["code"] == "broker_unavailable"
            assert int(response.headers["retry-after"]) > 0
            assert elapsed < HANG_BOUND_S, f"{url} took {elapsed:.1f} s"

        assert await state_redis.zcard(JOB_IDS) == 0
        assert await state_redis.keys("sv:job:*") == []

        live = await client.post(SYNTHESIZE, json={"text": "The kitchen was redone last year."})
        assert live.status_code == 200
        assert live.headers["content-type"] == "audio/mpeg"
        assert live.content


async def test_pregenerating_for_an_unknown_agent_is_404_and_queues_nothing(
    queueing_client: httpx.AsyncClient,
    broker_redis: aioredis.Redis,
    state_redis: aioredis.Redis,
) -> None:
    response = await queueing_client.post(PREGENERATE, json={"voice_agent_id": "agent_nobody"})

    assert response.status_code == 404
    assert error_of(response)["code"] == "agent_not_found"
    await assert_nothing_queued(broker_redis, state_redis)


async def test_pregenerating_one_persona_and_language_queues_its_catalog_in_each_format(
    queueing_client: httpx.AsyncClient, broker_redis: aioredis.Redis
) -> None:
    response = await queueing_client.post(
        PREGENERATE,
        json={"persona": "casual", "language": "es", "output_formats": ["ulaw_8000"]},
    )

    assert response.status_code == 202, response.text
    accepted = response.json()
    phrases = len(catalog_phrases(Persona.CASUAL, Language.ES))
    assert accepted["kind"] == "pregenerate"
    assert accepted["total"] == phrases
    assert accepted["chunks"] == -(-phrases // 10)
    assert await broker_redis.llen(QUEUE) == accepted["chunks"]
    status = (await queueing_client.get(accepted["status_url"])).json()
    assert {i["content_type"] for i in status["items"]} == {"audio/basic"}


async def test_pregenerating_all_languages_queues_every_persona_in_both_default_formats(
    queueing_client: httpx.AsyncClient, broker_redis: aioredis.Redis
) -> None:
    response = await queueing_client.post(PREGENERATE, json={"language": "all"})

    assert response.status_code == 202, response.text
    phrases = sum(len(catalog_phrases(p, lang)) for p in Persona for lang in Language)
    assert response.json()["total"] == phrases * 2
    assert await broker_redis.llen(QUEUE) == response.json()["chunks"]


async def test_a_2_mib_body_is_accepted_by_the_bulk_route_alone(
    queueing_client: httpx.AsyncClient, broker_redis: aioredis.Redis
) -> None:
    sentence = "The garden faces south and gets the sun all afternoon. "
    text = (sentence * (4300 // len(sentence) + 1))[:4300]
    items = [{"id": f"long-{i}", "text": text} for i in range(500)]
    body = httpx.Request("POST", BULK, json={"items": items, "background": True}).content
    assert len(body) > 2 * 1_048_576
    headers = {"content-type": "application/json"}

    bulk = await queueing_client.post(BULK, content=body, headers=headers)
    single = await queueing_client.post(SYNTHESIZE, content=body, headers=headers)

    assert bulk.status_code == 202, bulk.text
    assert bulk.json()["total"] == 500
    assert await broker_redis.llen(QUEUE) == 50
    assert single.status_code == 413
    assert error_of(single)["code"] == "payload_too_large"


async def test_a_bulk_body_that_is_not_json_is_415(
    queueing_client: httpx.AsyncClient,
    broker_redis: aioredis.Redis,
    state_redis: aioredis.Redis,
) -> None:
    response = await queueing_client.post(
        BULK, content=b"text=Hello", headers={"content-type": "application/x-www-form-urlencoded"}
    )

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    await assert_nothing_queued(broker_redis, state_redis)
