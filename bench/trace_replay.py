"""Benchmark what the audio cache saves on a day of real-estate agent calls, replayed twice.

What it measures
----------------
`bench/data/agent_day.jsonl` is one working day of a brokerage's voice agents (one JSON object
per utterance: time, call, agent, persona, language, text): inbound calls in English,
Spanish and Mandarin with the greetings, fillers, confirmations and sign-offs agents repeat
word for word, listing blurbs read from the same sheet, scheduling, and lines said once
(names, one-off answers). The trace is replayed in order, one utterance at a time, through
the full API as `make run` starts it, pointed at the fake ElevenLabs (upstream key set, no
added latency), as `ulaw_8000` with `Accept: application/json` (the same request, with the
per-segment report in the body):

* with the cache: "day 1" on an empty private Redis, then "day 2", the same trace again;
* the baseline, in the same run, on the flushed Redis: the same two days with
  `"cache": false` in every request.

Per day and arm: requests; per request `X-Cache` (hit / partial / miss / bypass); segments
and the share answered from cache; characters billed as the fake counted them and as the
responses reported them (`characters_billed`), and `characters_saved`; and the characters
billed as a share of the baseline's on the same day.

Day 2 repeats day 1 word for word inside the cache's 24 h TTL, so it is the best case; day 1
alone shows what repetition within one day saves.

Aim: on day 2, at least 50 % fewer characters billed than without the cache.

How to run
----------
From the repository root, with the repo's requirements installed (redis-server too: the
benchmark starts its own on a free port and stops it)::

    python bench/trace_replay.py [--trace bench/data/agent_day.jsonl]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.services import api_env, flush, machine_lines, private_redis, redis_version
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.processes import ApiProcess

DEFAULT_TRACE = Path(__file__).resolve().parent / "data" / "agent_day.jsonl"
SYNTHESIZE_PATH = "/api/v1/voice/synthesize"
WIRE_FORMAT = "ulaw_8000"
DAYS = ("day 1", "day 2")
AIM_DAY2_SAVING = 0.5


@dataclass(frozen=True)
class Utterance:
    time: str
    call: str
    agent: str
    persona: str
    language: str
    text: str


@dataclass
class DayResult:
    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    segments: Counter[str] = field(default_factory=Counter)
    billed_by_responses: int = 0
    saved_by_responses: int = 0
    billed_by_fake: int = 0
    upstream_calls: int = 0
    providers: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    @property
    def segment_hit_rate(self) -> float:
        return self.segments["hit"] / max(1, sum(self.segments.values()))


def load_trace(path: Path) -> list[Utterance]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [Utterance(**row) for row in rows]


def replay(
    http: httpx.Client, url: str, fake: FakeElevenLabs, trace: Sequence[Utterance], cache: bool
) -> DayResult:
    """The trace once, in order; the fake's counters are read before and after."""
    result = DayResult()
    before = fake.stats()
    started = time.perf_counter()
    for utterance in trace:
        body = {
            "text": utterance.text,
            "persona": utterance.persona,
            "language": utterance.language,
            "output_format": WIRE_FORMAT,
            "cache": cache,
        }
        response = http.post(url, json=body, headers={"accept": "application/json"})
        if response.status_code != 200:
            raise RuntimeError(f"{utterance.call} {utterance.time}: {response.status_code}")
        report: Any = response.json()
        result.requests += 1
        result.outcomes[response.headers["x-cache"]] += 1
        result.providers[response.headers["x-provider"]] += 1
        result.billed_by_responses += int(report["characters_billed"])
        result.saved_by_responses += int(report["characters_saved"])
        for segment in report["segments"]:
            result.segments[str(segment["cache"])] += 1
    result.wall_s = time.perf_counter() - started
    after = fake.stats()
    result.billed_by_fake = after.characters_billed - before.characters_billed
    result.upstream_calls = after.total_requests - before.total_requests
    return result


def measure(
    trace: Sequence[Utterance], redis_url: str, work: Path
) -> dict[tuple[str, str], DayResult]:
    results: dict[tuple[str, str], DayResult] = {}
    with FakeElevenLabs() as fake:
        env = api_env(
            redis_url, ELEVENLABS__API_KEY=fake.api_key, ELEVENLABS__BASE_URL=fake.base_url
        )
        with ApiProcess(env, work) as api, httpx.Client(timeout=60) as http:
            fake.behavior.max_concurrent_requests = 50  # the plan the limiter is sized for
            url = api.base_url + SYNTHESIZE_PATH
            for arm, cache in (("no cache (baseline)", False), ("cache", True)):
                # A request with "cache": false still stores what it makes; start each arm empty.
                flush(redis_url)
                for day in DAYS:
                    results[(arm, day)] = replay(http, url, fake, trace, cache)
    return results


def print_header(trace: Sequence[Utterance], path: Path, redis_info: str) -> None:
    texts = Counter(u.text for u in trace)
    languages = Counter(u.language for u in trace)
    print("# Trace replay: characters billed with and without the audio cache")
    print()
    for line in machine_lines():
        print(line)
    print(f"- redis-server {redis_info}, private, on loopback, flushed before each arm")
    print(
        f"- Trace: `{path.name}`, {len(trace)} utterances in {len({u.call for u in trace})} "
        f"calls ({', '.join(f'{n} {lang}' for lang, n in languages.most_common())}), "
        f"{sum(len(u.text) for u in trace):,} characters; {len(texts)} distinct texts, "
        f"{sum(n - 1 for n in texts.values())} utterances repeat an earlier one word for word"
    )
    print(
        f"- Replayed in order, one request at a time, `{WIRE_FORMAT}`, against the fake "
        "ElevenLabs (no added latency); each arm replays the day twice"
    )
    print()


def print_table(results: dict[tuple[str, str], DayResult]) -> None:
    print(
        "| arm | day | requests | X-Cache hit / partial / miss / bypass | segments "
        "| segments from cache | upstream calls | chars billed (fake) "
        "| chars billed (responses) | chars saved (responses) | billed vs baseline |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for (arm, day), day_result in results.items():
        baseline = results[("no cache (baseline)", day)]
        outcomes = " / ".join(
            str(day_result.outcomes[name]) for name in ("hit", "partial", "miss", "bypass")
        )
        share = day_result.billed_by_fake / max(1, baseline.billed_by_fake)
        print(
            f"| {arm} | {day} | {day_result.requests} | {outcomes} "
            f"| {sum(day_result.segments.values())} | {day_result.segment_hit_rate:.1%} "
            f"| {day_result.upstream_calls} | {day_result.billed_by_fake:,} "
            f"| {day_result.billed_by_responses:,} | {day_result.saved_by_responses:,} "
            f"| {share:.1%} |"
        )
    print()
    mismatched = [
        f"{arm} {day}"
        for (arm, day), r in results.items()
        if r.billed_by_fake != r.billed_by_responses
    ]
    print(
        "Characters billed, the fake's count against the responses': "
        + ("equal in every row." if not mismatched else f"DIFFERENT in {', '.join(mismatched)}.")
    )
    providers = Counter[str]()
    for r in results.values():
        providers.update(r.providers)
    print(f"X-Provider over every request: {dict(providers)}.")
    day1 = results[("cache", "day 1")].billed_by_fake
    base1 = results[("no cache (baseline)", "day 1")].billed_by_fake
    day2 = results[("cache", "day 2")].billed_by_fake
    base2 = results[("no cache (baseline)", "day 2")].billed_by_fake
    saving1 = 1 - day1 / max(1, base1)
    saving2 = 1 - day2 / max(1, base2)
    met = "met" if saving2 >= AIM_DAY2_SAVING else "NOT met"
    print(
        f"Aim ≥ {AIM_DAY2_SAVING:.0%} fewer characters billed on day 2: {met} "
        f"({saving2:.1%} fewer). Day 1 alone, repetition within the day: {saving1:.1%} fewer."
    )
    wall = {key: r.wall_s for key, r in results.items()}
    print(
        "Replay time per day (s): "
        + ", ".join(f"{arm} {day} {seconds:.1f}" for (arm, day), seconds in wall.items())
        + "."
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="JSON lines trace")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    trace = load_trace(args.trace)
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        work = Path(tmp)
        with private_redis(work / "redis") as redis_url:
            info = redis_version(redis_url)
            results = measure(trace, redis_url, work)
    print_header(trace, args.trace, info)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
