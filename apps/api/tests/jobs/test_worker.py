"""Bulk and pre-generation jobs end to end: the API queues, a real `make worker` synthesizes."""

from collections import Counter

import httpx
import pytest
import redis.asyncio as aioredis

from app.cache.audio_cache import CATALOG_INDEX
from app.catalog import catalog_phrases
from app.tts.models import Language, Persona
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.jobs.polling import wait_for_job
from tests.processes import MakeProcess

pytestmark = pytest.mark.integration

BULK = "/api/v1/voice/streaming/synthesize/bulk"
PREGENERATE = "/api/v1/voice/streaming/pregenerate"
SYNTHESIZE = "/api/v1/voice/synthesize"
SIX_DAYS_S = 6 * 24 * 3600


def listing(i: int) -> str:
    return f"Listing {i} has {i % 5 + 2} bedrooms and a garden."


def upstream_texts(fake: FakeElevenLabs) -> Counter[str]:
    return Counter(
        r.json["text"] for r in fake.stats().requests if r.path.startswith("/v1/text-to-speech")
    )


async def test_a_500_item_background_job_completes_with_every_item_downloadable(
    jobs_client: httpx.AsyncClient, shared_worker: MakeProcess, elevenlabs: FakeElevenLabs
) -> None:
    items = [
        {"id": f"item-{i}", "text": listing(i), "output_format": "pcm_16000"} for i in range(500)
    ]
    accepted = await jobs_client.post(BULK, json={"items": items, "background": True})
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["total"] == 500
    assert job["status_url"].endswith(job["job_id"])

    status = await wait_for_job(jobs_client, job["job_id"])

    assert status["counts"] == {"queued": 0, "done": 500, "failed": 0, "cached": 0}
    assert [item["id"] for item in status["items"]] == [f"item-{i}" for i in range(500)]
    assert {item["provider"] for item in status["items"]} == {"elevenlabs"}
    assert sum(upstream_texts(elevenlabs).values()) == 500
    for item in status["items"]:
        audio = await jobs_client.get(item["audio_url"])
        assert audio.status_code == 200
        assert audio.headers["content-type"].startswith("audio/pcm")
        assert abs(len(audio.content) - item["audio_duration_ms"] * 32) < 32  # 16 kHz, 16-bit
    # The job's audio is the cache's: the same request later is a hit, byte for byte.
    again = await jobs_client.post(
        SYNTHESIZE, json={"text": items[7]["text"], "output_format": "pcm_16000"}
    )
    first = await jobs_client.get(status["items"][7]["audio_url"])
    assert again.headers["x-cache"] == "hit"
    assert again.content == first.content
    assert sum(upstream_texts(elevenlabs).values()) == 500


async def test_the_seed_pregenerate_call_caches_the_agents_catalog_for_seven_days(
    jobs_client: httpx.AsyncClient,
    shared_worker: MakeProcess,
    elevenlabs: FakeElevenLabs,
    fresh_redis: str,
) -> None:
    custom = "Thanks for calling Maple Realty, home of happy buyers!"
    agent = {"display_name": "Maple", "persona": "friendly", "custom_phrases": [custom]}
    assert (
        await jobs_client.put("/api/v1/voice/agents/your_agent_id", json=agent)
    ).status_code == 201

    accepted = await jobs_client.post(
        PREGENERATE,
        json={"voice_agent_id": "your_agent_id", "language": "en"},
        headers={"Content-Type": "application/json"},
    )
    assert accepted.status_code == 202, accepted.text
    status = await wait_for_job(jobs_client, accepted.json()["job_id"])

    phrases = [p.text for p in catalog_phrases(Persona.FRIENDLY, Language.EN)] + [custom]
    assert status["kind"] == "pregenerate"
    assert status["counts"]["done"] == len(phrases) * 2  # mp3 for the web, μ-law for phones
    assert status["counts"]["failed"] == 0
    billed = elevenlabs.stats().total_requests
    for text in phrases:
        for output_format in ("mp3_44100_128", "ulaw_8000"):
            body = {"text": text, "voice_agent_id": "your_agent_id", "output_format": output_format}
            spoken = await jobs_client.post(SYNTHESIZE, json=body)
            assert spoken.headers["x-cache"] == "hit", text
            assert spoken.headers["x-persona"] == "friendly"
    assert elevenlabs.stats().total_requests == billed
    state = aioredis.Redis.from_url(fresh_redis)
    try:
        catalog = await state.smembers(CATALOG_INDEX)
        assert len(catalog) >= len(phrases) * 2
        ttls = [await state.ttl(key) for key in catalog]
        assert min(ttls) > SIX_DAYS_S
    finally:
        await state.aclose()
