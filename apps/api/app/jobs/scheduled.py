"""Beat's scheduled work: each run claims its slot, does its work, and is recorded."""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.analytics import alerts
from app.cache.maintenance import maintain
from app.jobs.schedule_runs import claim_slot, record_run
from app.services import Services
from app.tts.warm_up import warm_up

logger = logging.getLogger(__name__)

Work = Callable[[Services, str | None], Awaitable[dict[str, Any]]]


async def run_scheduled(
    services: Services, task: str, slot: str | None, work: Work
) -> dict[str, Any]:
    """`work`, once per slot (task, local date, time of day); unslotted runs always run."""
    started = time.time()
    if slot is not None and not await claim_slot(
        services.redis, task, slot, services.settings.jobs.timezone
    ):
        logger.info("%s for %s already ran today: skipped", task, slot)
        return {"skipped": "already ran in this slot"}
    outcome = await work(services, slot)
    await record_run(services.redis, task, started, {"slot": slot, "result": outcome})
    return outcome


async def maintain_cache(services: Services, _slot: str | None) -> dict[str, Any]:
    jobs = services.settings.jobs
    report = await maintain(
        services.cache_redis,
        catalog_ttl_s=services.settings.cache.catalog_ttl_s,
        refresh_before_s=jobs.refresh_before_s,
        memory_budget_bytes=jobs.cache_memory_budget_bytes,
    )
    compacted = await services.jobs.compact()
    return {**report.as_dict(), "jobs_compacted": compacted}


async def warm_up_voices(services: Services, slot: str | None) -> dict[str, Any]:
    return await warm_up(services, slot)


async def evaluate(services: Services, _slot: str | None) -> dict[str, Any]:
    """Detect anomalies, alert the sink (retrying its outbox), push the metrics summary.

    Its run record is also beat's heartbeat.
    """
    settings = services.settings
    await services.circuits.refresh()
    outcome = await alerts.evaluate_and_alert(
        services.redis,
        services.events,
        settings.analytics,
        settings.monitoring,
        circuits=services.circuits.views(),
    )
    return {"beat": "alive", **outcome}
