"""The audio cache through the API and on its own, against the session's private Redis."""

import asyncio
import hashlib

import httpx
import pytest
import redis.asyncio as aioredis

from app.cache.audio_cache import AudioCache
from app.cache.entry import decode_entry, encode_entry, new_entry
from app.config import CacheSettings, Settings
from tests.asgi import app_client
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.fakes.synthetic_audio import render_audio

URL = "/api/v1/voice/synthesize"
FIRST = "Good morning, this is Sarah from Maple Realty."
SECOND = "I am calling about the house on Oak Avenue."
THIRD = "Would Saturday at ten work for a showing?"


async def _audio_keys(redis_url: str) -> list[bytes]:
    async with aioredis.Redis.from_url(redis_url) as client:
        return [key async for key in client.scan_iter(match="sv:audio:v1:*")]


async def test_asking_twice_costs_elevenlabs_once_and_answers_the_same_bytes(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    first = await upstream_client.post(URL, json={"text": FIRST})
    second = await upstream_client.post(URL, json={"text": FIRST})

    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert second.content == first.content
    assert second.headers["x-provider"] == "elevenlabs"
    assert elevenlabs.stats().total_requests == 1


async def test_a_paragraph_with_known_sentences_is_partial_and_bills_only_the_new_one(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    await upstream_client.post(URL, json={"text": f"{FIRST} {SECOND}"})
    billed_before = elevenlabs.stats().characters_billed

    response = await upstream_client.post(
        URL, json={"text": f"{FIRST} {SECOND} {THIRD}"}, headers={"accept": "application/json"}
    )

    payload = response.json()
    assert response.headers["x-cache"] == "partial"
    assert [s["cache"] for s in payload["segments"]] == ["hit", "hit", "miss"]
    billed_now = elevenlabs.stats().characters_billed - billed_before
    assert billed_now == payload["characters_billed"] == payload["segments"][2]["characters_billed"]
    assert billed_now == -(-len(THIRD) // 2)  # flash bills half a credit per character
    assert payload["characters_saved"] == -(-len(FIRST) // 2) + -(-len(SECOND) // 2)
    assert elevenlabs.stats().total_requests == 3


async def test_cache_false_neither_reads_nor_writes_the_cache(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs, fresh_redis: str
) -> None:
    await upstream_client.post(URL, json={"text": FIRST})

    response = await upstream_client.post(URL, json={"text": FIRST, "cache": False})
    private = await upstream_client.post(URL, json={"text": SECOND, "cache": False})

    assert response.headers["x-cache"] == "bypass"
    assert private.headers["x-cache"] == "bypass"
    assert elevenlabs.stats().total_requests == 3
    assert len(await _audio_keys(fresh_redis)) == 1  # only FIRST, from the first request


async def test_the_same_words_in_another_voice_format_or_case_are_other_entries(
    upstream_client: httpx.AsyncClient, fresh_redis: str
) -> None:
    variants = [
        {"text": FIRST},
        {"text": FIRST.upper()},
        {"text": FIRST, "persona": "casual"},
        {"text": FIRST, "output_format": "ulaw_8000"},
        {"text": FIRST, "language": "es"},
    ]
    for body in variants:
        response = await upstream_client.post(URL, json=body)
        assert response.headers["x-cache"] == "miss", body

    again = await upstream_client.post(
        URL, json={"text": "  Good morning,  this is Sarah from Maple Realty. "}
    )

    assert again.headers["x-cache"] == "hit"  # whitespace does not make another entry
    assert len(await _audio_keys(fresh_redis)) == len(variants)


async def test_dynamic_text_lives_a_day_and_hot_segments_are_promoted_to_a_week(
    upstream_client: httpx.AsyncClient, fresh_redis: str
) -> None:
    await upstream_client.post(URL, json={"text": FIRST})
    (key,) = await _audio_keys(fresh_redis)
    async with aioredis.Redis.from_url(fresh_redis) as client:
        assert 86_000 < await client.ttl(key) <= 86_400
        for _ in range(3):  # promote_after_hits defaults to 3
            assert (await upstream_client.post(URL, json={"text": FIRST})).headers[
                "x-cache"
            ] == "hit"
        # Hits are counted in memory and written once a second.
        for _ in range(50):
            if await client.ttl(key) > 86_400:
                break
            await asyncio.sleep(0.1)
        assert await client.ttl(key) > 6 * 86_400


async def test_catalog_entries_get_the_week_long_ttl(fresh_redis: str) -> None:
    async with aioredis.Redis.from_url(fresh_redis) as client:
        cache = AudioCache(client, CacheSettings())
        entry = new_entry(
            b"\xff" * 800, wire_format="ulaw_8000", provider="elevenlabs", voice_id="v",
            duration_ms=100, quality=1.0, characters_billed=10, catalog=True,
        )  # fmt: skip

        assert await cache.store("sv:audio:v1:catalog-test", entry)

        assert await client.ttl("sv:audio:v1:catalog-test") > 6 * 86_400


@pytest.mark.parametrize(
    "damage",
    [
        lambda value: value[: len(value) // 2],  # truncated
        lambda value: value[:-10] + b"\x00" * 10,  # corrupt audio
        lambda value: b"garbage",  # not a value at all
    ],
    ids=["truncated", "corrupt", "garbage"],
)
async def test_a_damaged_value_is_a_miss_that_gets_overwritten(
    upstream_client: httpx.AsyncClient,
    elevenlabs: FakeElevenLabs,
    fresh_redis: str,
    damage: object,
) -> None:
    first = await upstream_client.post(URL, json={"text": FIRST})
    (key,) = await _audio_keys(fresh_redis)
    async with aioredis.Redis.from_url(fresh_redis) as client:
        value = await client.get(key)
        assert value is not None
        await client.set(key, damage(value), keepttl=True)  # type: ignore[operator]

        again = await upstream_client.post(URL, json={"text": FIRST})

        assert again.headers["x-cache"] == "miss"
        assert again.content == first.content
        assert elevenlabs.stats().total_requests == 2
        repaired = await client.get(key)
        assert isinstance(repaired, bytes)
        assert decode_entry(repaired).audio  # overwritten with an intact value
    third = await upstream_client.post(URL, json={"text": FIRST})
    assert third.headers["x-cache"] == "hit"


async def test_a_value_of_the_wrong_format_is_never_served(
    upstream_client: httpx.AsyncClient, fresh_redis: str
) -> None:
    await upstream_client.post(URL, json={"text": FIRST, "output_format": "pcm_16000"})
    (key,) = await _audio_keys(fresh_redis)
    async with aioredis.Redis.from_url(fresh_redis) as client:
        stored = await client.get(key)
        assert isinstance(stored, bytes)
        entry = decode_entry(stored)
        wrong = new_entry(
            b"\x00" * 400, wire_format="ulaw_8000", provider="elevenlabs", voice_id="v",
            duration_ms=50, quality=1.0, characters_billed=1, catalog=False,
        )  # fmt: skip
        await client.set(key, encode_entry(wrong))

        response = await upstream_client.post(
            URL, json={"text": FIRST, "output_format": "pcm_16000"}
        )

    assert response.headers["x-cache"] == "miss"
    assert response.content == entry.audio


async def test_a_hundred_concurrent_texts_each_get_their_own_audio(
    upstream_settings: Settings,
) -> None:
    texts = [f"Unit {n} on Birch Lane has {n % 5 + 1} bedrooms." for n in range(100)]
    # Everything shares one process here; a generous budget keeps ElevenLabs the speaker.
    synthesis = upstream_settings.synthesis.model_copy(update={"response_timeout_ms": 30_000})
    settings = upstream_settings.model_copy(update={"synthesis": synthesis})

    async with app_client(settings) as client:
        responses = await asyncio.gather(
            *(client.post(URL, json={"text": t, "output_format": "ulaw_8000"}) for t in texts)
        )
        again = await asyncio.gather(
            *(client.post(URL, json={"text": t, "output_format": "ulaw_8000"}) for t in texts)
        )

    hashes = {hashlib.sha256(r.content).hexdigest() for r in responses}
    assert len(hashes) == 100
    for text, first, second in zip(texts, responses, again, strict=True):
        assert first.content == render_audio(text, "ulaw_8000")  # its own text, no cross-talk
        assert second.headers["x-cache"] == "hit"
        assert second.content == first.content
