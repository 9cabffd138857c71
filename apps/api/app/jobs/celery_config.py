"""The Celery application built from Settings: broker, reliability options, the beat schedule.

The worker and beat use the module-level app in `celery_app`; the API builds its own from its
settings (it only publishes, by task name).
"""

from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab

from app.config import JobsSettings, Settings

BULK_SYNTHESIZE = "tts.bulk_synthesize"
CACHE_MAINTAIN = "cache.maintain"
WARM_UP = "voice.warm_up"
EVALUATE = "analytics.evaluate"
REDBEAT_PREFIX = "sv:redbeat:"
HARD_LIMIT_MARGIN_S = 5


def broker_url(settings: Settings) -> str:
    return settings.jobs.broker_url or settings.redis.url


def _at(clock: str) -> crontab:
    hour, minute = clock.split(":")
    return crontab(hour=int(hour), minute=int(minute))


def beat_schedule(jobs: JobsSettings) -> dict[str, dict[str, Any]]:
    """Every scheduled task, in `jobs.timezone`; warm-ups pass their slot for run-once keys."""
    schedule: dict[str, dict[str, Any]] = {
        CACHE_MAINTAIN: {
            "task": CACHE_MAINTAIN,
            "schedule": _at(jobs.maintain_at),
            "args": (jobs.maintain_at,),
        },
        EVALUATE: {"task": EVALUATE, "schedule": timedelta(seconds=jobs.evaluate_every_s)},
    }
    for clock in jobs.warm_up_at:
        schedule[f"{WARM_UP}@{clock}"] = {
            "task": WARM_UP,
            "schedule": _at(clock),
            "args": (clock,),
        }
    return schedule


def make_celery(settings: Settings) -> Celery:
    jobs = settings.jobs
    url = broker_url(settings)
    app = Celery("seiketsu_voice", broker=url, include=["app.jobs.tasks"])
    transport = {
        "visibility_timeout": jobs.visibility_timeout_s,
        # A dead worker's task is handed on once unacknowledged past the visibility timeout;
        # kombu looks for such tasks every interval × throttle seconds (10 × 10 by default).
        "unacked_restore_interval": max(1, min(10, jobs.visibility_timeout_s // 2)),
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        # Progress and results live in the job records; Celery's own results are not read.
        task_ignore_result=True,
        # No result backend: no backend_cleanup entry in the beat schedule either.
        result_expires=None,
        # Tasks are idempotent: a task whose worker died is run again, not lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Tasks end themselves at task_time_limit_s (asyncio cancellation, clean); the hard
        # limit only catches a process that stopped running its loop.
        task_time_limit=jobs.task_time_limit_s + HARD_LIMIT_MARGIN_S,
        broker_transport_options=transport,
        visibility_timeout=jobs.visibility_timeout_s,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2.0,
        # On SIGTERM a task under way gets this long, then its message goes back to the queue.
        worker_soft_shutdown_timeout=10.0,
        task_default_queue="seiketsu-voice",
        timezone=jobs.timezone,
        enable_utc=True,
        worker_hijack_root_logger=False,
        beat_scheduler="redbeat.RedBeatScheduler",
        beat_schedule=beat_schedule(jobs),
        beat_max_loop_interval=jobs.beat_max_loop_interval_s,
        redbeat_redis_url=url,
        redbeat_key_prefix=REDBEAT_PREFIX,
        redbeat_lock_timeout=jobs.beat_lock_timeout_s,
    )
    return app
