"""GET /metrics: valid Prometheus text, bounded labels, every process of the service in one answer.

In-process tests share the session's multiprocess directory with every process other tests
started (see the `metrics_dir` fixture), so they compare counts before and after.
"""

from collections import Counter as Tally
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.processes import ApiProcess, api_env

SYNTHESIZE = "/api/v1/voice/synthesize"
REQUESTS = "seiketsu_voice_http_request_duration_seconds_count"

# (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return _parse(response.text)


def _total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every series whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (n, pairs), value in samples.items() if n == name and wanted <= set(pairs))


def _grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return _total(after, name, **labels) - _total(before, name, **labels)


def _label_values(samples: Samples) -> Tally[str]:
    return Tally(value for _, pairs in samples for _, value in pairs)


async def test_metrics_answers_prometheus_text_of_the_services_own_metrics(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/health")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = list(text_string_to_metric_families(response.text))
    assert families
    assert all(family.name.startswith("seiketsu_voice_") for family in families)
    kinds = {family.name: family.type for family in families}
    assert kinds["seiketsu_voice_http_request_duration_seconds"] == "histogram"


async def test_a_miss_then_a_hit_count_one_of_each_and_score_the_new_segment(
    client: httpx.AsyncClient,
) -> None:
    body = {"text": "The garden flat on Elm Road has two bedrooms.", "language": "en"}
    before = await _scrape(client)

    miss = await client.post(SYNTHESIZE, json=body)
    hit = await client.post(SYNTHESIZE, json=body)
    after = await _scrape(client)
    from_memory = await client.post(SYNTHESIZE, json=body)
    last = await _scrape(client)

    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert from_memory.headers["x-cache"] == "hit"
    segments = "seiketsu_voice_cache_segment_hits_total"
    assert _grown(before, after, segments, tier="redis") == 1
    assert _grown(before, after, segments, tier="memory") == 0
    assert _grown(after, last, segments, tier="memory") == 1
    assert _grown(after, last, segments, tier="redis") == 0
    lookups = "seiketsu_voice_cache_lookups_total"
    assert _grown(before, after, lookups, outcome="miss") == 1
    assert _grown(before, after, lookups, outcome="hit") == 1
    assert _grown(before, after, "seiketsu_voice_quality_score_count", provider="espeak") == 1
    served = _grown(before, after, "seiketsu_voice_cache_served_bytes_total", surface="http")
    assert served > 0
    first_audio = "seiketsu_voice_synthesis_first_audio_seconds_count"
    assert _grown(before, after, first_audio, surface="http", cache="miss") == 1
    assert _grown(before, after, first_audio, surface="http", cache="hit") == 1
    assert _grown(before, after, REQUESTS, method="POST", route=SYNTHESIZE, status="2xx") == 2


async def test_request_durations_are_labelled_by_route_template_never_by_path(
    client: httpx.AsyncClient,
) -> None:
    before = await _scrape(client)

    known = await client.get("/api/v1/voice/streaming/jobs/job_doesnotexist")
    unknown = await client.get("/no/such/page-42")
    after = await _scrape(client)

    assert (known.status_code, unknown.status_code) == (404, 404)
    template = "/api/v1/voice/streaming/jobs/{job_id}"
    assert _grown(before, after, REQUESTS, method="GET", route=template, status="4xx") == 1
    assert _grown(before, after, REQUESTS, method="GET", route="unmatched", status="4xx") == 1
    routes = {dict(pairs).get("route") for _, pairs in after}
    assert not any(route and ("doesnotexist" in route or "page-42" in route) for route in routes)


async def test_an_unknown_method_is_labelled_other(client: httpx.AsyncClient) -> None:
    before = await _scrape(client)

    await client.request("BREW", "/health")
    after = await _scrape(client)

    assert _grown(before, after, REQUESTS, method="other", route="/health") == 1
    assert "BREW" not in _label_values(after)


async def test_no_label_holds_a_key_a_text_or_an_agent_id(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    text = "Sarah from Maple Realty will call you back about 12 Birch Lane."
    agent = "agent_maple_realty_secret_07"
    before = await _scrape(upstream_client)

    response = await upstream_client.post(
        SYNTHESIZE,
        json={"text": text, "voice_agent_id": agent, "language": "en"},
        headers={"accept": "application/json"},
    )
    exposition = (await upstream_client.get("/metrics")).text
    after = _parse(exposition)

    assert response.status_code == 200
    spoken = response.json()
    assert spoken["provider"] == "elevenlabs"
    calls = "seiketsu_voice_upstream_calls_total"
    assert _grown(before, after, calls, provider="elevenlabs", status="2xx") == len(
        spoken["segments"]
    )
    billed = "seiketsu_voice_upstream_billed_characters_total"
    assert _grown(before, after, billed, surface="http") == spoken["characters_billed"] > 0
    for secret in (elevenlabs.api_key, text, agent, "Birch Lane", "Maple Realty"):
        assert secret not in exposition


async def test_an_upstream_error_counts_by_status_and_as_a_fallback(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.status = 500
    elevenlabs.behavior.fail_first_n = 1
    before = await _scrape(upstream_client)

    response = await upstream_client.post(
        SYNTHESIZE, json={"text": "The viewing is confirmed for Friday.", "language": "en"}
    )
    after = await _scrape(upstream_client)

    assert response.status_code == 200
    calls = "seiketsu_voice_upstream_calls_total"
    assert _grown(before, after, calls, provider="elevenlabs", status="5xx") == 1
    assert _grown(before, after, calls, provider="elevenlabs", status="2xx") == 1
    fallbacks = "seiketsu_voice_fallback_activations_total"
    assert _grown(before, after, fallbacks, reason="upstream_server_error") == 1


@pytest.mark.integration
def test_two_api_processes_sharing_a_directory_count_into_one_answer(
    redis_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    env = api_env(redis_url, METRICS__MULTIPROC_DIR=str(directory))
    route = "/api/v1/voice/profiles"
    with ApiProcess(env, tmp_path) as first, ApiProcess(env, tmp_path) as second:
        for _ in range(3):
            assert httpx.get(first.base_url + route, timeout=10).status_code == 200
        for _ in range(2):
            assert httpx.get(second.base_url + route, timeout=10).status_code == 200

        answers = [httpx.get(p.base_url + "/metrics", timeout=10) for p in (first, second)]

    for answer in answers:
        samples = _parse(answer.text)
        assert _total(samples, REQUESTS, method="GET", route=route, status="2xx") == 5
    assert len(list(directory.glob("histogram_*.db"))) == 2  # one file per process


@pytest.mark.integration
def test_a_killed_processs_open_sessions_stop_counting(redis_url: str, tmp_path: Path) -> None:
    env = api_env(redis_url, METRICS__MULTIPROC_DIR=str(tmp_path / "metrics"))
    sessions = "seiketsu_voice_websocket_sessions"
    with ApiProcess(env, tmp_path) as doomed, ApiProcess(env, tmp_path) as survivor:
        ws_url = doomed.base_url.replace("http", "ws") + "/api/v1/voice/streaming/stream/call-1"
        with connect(ws_url, open_timeout=10, close_timeout=1) as ws:
            ws.send('{"type": "ping"}')
            assert "pong" in str(ws.recv(timeout=10))  # the session is registered by now
            open_now = _parse(httpx.get(survivor.base_url + "/metrics", timeout=10).text)
            doomed.kill()
        after_kill = _parse(httpx.get(survivor.base_url + "/metrics", timeout=10).text)

    assert _total(open_now, sessions) == 1
    assert _total(after_kill, sessions) == 0
