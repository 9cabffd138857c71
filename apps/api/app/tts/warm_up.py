"""The warm-ups (08:00 and 17:00): probe ElevenLabs, then refresh active agents' phrases.

The probe goes through the worker's pooled client, so the day's first jobs find a fresh
connection; its outcome is kept for the health check. Each active agent gets a pre-generation
job: phrases already cached are hits (their TTL renewed), the rest are made on bulk slots.
"""

import json
import logging
import time
from typing import Any

from redis.asyncio import Redis

from app.errors import AppError
from app.services import Services
from app.tts.batch import submit_pregeneration

logger = logging.getLogger(__name__)

UPSTREAM_PROBE = "sv:upstream:probe"


async def probe_upstream(services: Services) -> dict[str, Any]:
    probe: dict[str, Any] = {"at": time.time(), "configured": services.upstream.configured}
    if services.upstream.configured:
        started = time.perf_counter()
        try:
            plan = await services.upstream.subscription()
        except AppError as exc:
            probe.update(ok=False, error={"code": exc.code, "message": exc.message})
        else:
            probe.update(
                ok=True,
                tier=plan.get("tier"),
                character_count=plan.get("character_count"),
                character_limit=plan.get("character_limit"),
            )
        probe["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    await services.redis.set(UPSTREAM_PROBE, json.dumps(probe))
    return probe


async def last_probe(redis: Redis) -> dict[str, Any] | None:
    value = await redis.get(UPSTREAM_PROBE)
    return None if value is None else dict(json.loads(value))


async def warm_up(services: Services, slot: str | None) -> dict[str, Any]:
    probe = await probe_upstream(services)
    job_ids: list[str] = []
    for agent in await services.agents.active():
        record = await submit_pregeneration(
            services,
            voice_agent_id=agent.voice_agent_id,
            persona=None,
            language=None,
            formats=services.settings.jobs.pregenerate_formats,
            note=f"warm-up {slot or 'on demand'}",
        )
        job_ids.append(record.job_id)
    logger.info("warm-up %s: upstream ok=%s, %d jobs", slot, probe.get("ok"), len(job_ids))
    return {"upstream_ok": probe.get("ok"), "jobs": job_ids}
