"""What beat's scheduled tasks did: the last run of each (health shows it) and run-once slots.

A scheduled run claims its slot (task, local date, time of day) before working, so a run
delivered twice (a redelivered message, a second beat around a lock hand-over, a clock jump)
does its work once.
"""

import json
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from app.redis_text import text

LAST_RUNS = "sv:beat:last-run"  # hash: task name -> JSON of its last run
RUNS = "sv:beat:runs:"  # list per task: its recent runs, newest first
SLOT = "sv:beat:slot:"
_KEPT_RUNS = 200
_SLOT_TTL_S = 3 * 24 * 3600


async def claim_slot(redis: Redis, task: str, clock: str, timezone: str) -> bool:
    """True for the first run of `task` at `clock` today (in `timezone`); False after."""
    today = datetime.now(ZoneInfo(timezone)).date().isoformat()
    claimed = await redis.set(f"{SLOT}{task}:{today}T{clock}", "1", nx=True, ex=_SLOT_TTL_S)
    return bool(claimed)


async def record_run(redis: Redis, task: str, started: float, outcome: dict[str, Any]) -> None:
    run = json.dumps(
        {"task": task, "started_at": started, "finished_at": time.time(), **outcome},
        separators=(",", ":"),
    )
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(LAST_RUNS, task, run)
        pipe.lpush(RUNS + task, run)
        pipe.ltrim(RUNS + task, 0, _KEPT_RUNS - 1)
        await pipe.execute()


async def last_runs(redis: Redis) -> dict[str, dict[str, Any]]:
    found = await redis.hgetall(LAST_RUNS)
    return {text(k): json.loads(v) for k, v in found.items()}


async def recent_runs(redis: Redis, task: str) -> list[dict[str, Any]]:
    return [json.loads(run) for run in await redis.lrange(RUNS + task, 0, -1)]
