"""Alert delivery to the monitoring sink (`MONITORING_WEBHOOK_URL`) in Alertmanager v2 shape.

Only the `analytics.evaluate` task sends, so a sink that is down or slow never holds up a
request. Every alert due goes through an outbox in Redis (one entry per fingerprint, the latest
state winning): due entries are POSTed together as one v2 body (a JSON list); what fails stays,
with its attempts and the next try time (exponential backoff), for a later evaluation.
The per-minute metrics summary goes to the same URL as a JSON object with
`"type": "metrics_summary"`; it is not queued, since the next minute's supersedes it.
Nothing sent carries a secret other than the sink's own bearer.
"""

import contextlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import LockError
from redis.typing import EncodableT, FieldT

from app.analytics.anomalies import (
    OVERALL,
    SERVICE,
    Anomaly,
    AnomalyStore,
    Transition,
    WindowStats,
    evaluate_window,
    fingerprint,
)
from app.analytics.events import EventLog
from app.config import AnalyticsSettings, MonitoringSettings
from app.redis_text import text
from app.tts.circuit import CircuitView

logger = logging.getLogger(__name__)

OUTBOX = "sv:analytics:alert-outbox"  # hash: fingerprint -> JSON of an `OutboxEntry`
EVALUATING = "sv:analytics:evaluating"  # held (with a token) while an evaluation runs
MAX_OUTBOX = 1000


@dataclass(slots=True)
class OutboxEntry:
    alert: dict[str, Any]
    queued_at: float
    attempts: int = 0
    next_try_at: float = 0.0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    sent: int  # alerts the sink accepted in this evaluation
    queued: int  # alerts left in the outbox for a later try


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_alert(anomaly: Anomaly, generator_url: str) -> dict[str, Any]:
    """The anomaly as an Alertmanager v2 postable alert (`endsAt` only once resolved)."""
    alert: dict[str, Any] = {
        "labels": dict(anomaly.labels),
        "annotations": dict(anomaly.annotations),
        "startsAt": rfc3339(anomaly.starts_at),
        "generatorURL": generator_url,
    }
    if anomaly.ends_at is not None:
        alert["endsAt"] = rfc3339(anomaly.ends_at)
    return alert


def due_firing(transition: Transition, now: float, resend_s: float) -> list[Anomaly]:
    """Firing anomalies to send now: the new ones, and those last sent `resend_s` ago."""
    again = [
        a
        for a in transition.continuing
        if a.last_sent_at is None or now - a.last_sent_at >= resend_s
    ]
    return transition.started + again


def metrics_summary(
    scopes: Mapping[str, WindowStats], overall: str, window_s: float, now: float
) -> dict[str, Any]:
    """The window's figures overall, as pushed to the sink every evaluation."""
    return {
        "type": "metrics_summary",
        "service": SERVICE,
        "at": rfc3339(now),
        "window_s": window_s,
        **scopes[overall].as_dict(),
        "active_agents": len(scopes) - 1,
    }


class AlertSender:
    """POSTs alerts and summaries to the sink; keeps what failed in the Redis outbox."""

    def __init__(
        self,
        redis: Redis,
        client: httpx.AsyncClient,
        url: str,
        bearer: str | None,
        rules: AnalyticsSettings,
    ) -> None:
        self._redis = redis
        self._client = client
        self._url = url
        self._headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        self._rules = rules

    async def enqueue(self, alerts: Iterable[dict[str, Any]], now: float) -> None:
        """Put alerts in the outbox; one already waiting for the same labels is replaced but
        keeps its backoff, so a sink that is down is not hammered by fresh alerts."""
        alerts = list(alerts)
        if not alerts:
            return
        keys = [_key(alert) for alert in alerts]
        waiting = await self._redis.hmget(OUTBOX, keys)
        entries: dict[FieldT, EncodableT] = {}
        for key, alert, raw in zip(keys, alerts, waiting, strict=True):
            entry = OutboxEntry(alert=alert, queued_at=now, next_try_at=now)
            if raw is not None:
                old = OutboxEntry(**json.loads(raw))
                entry.attempts, entry.next_try_at = old.attempts, old.next_try_at
                entry.queued_at, entry.last_error = old.queued_at, old.last_error
            entries[key] = json.dumps(asdict(entry), separators=(",", ":"))
        await self._redis.hset(OUTBOX, mapping=entries)
        await self._trim()

    async def flush(self, now: float) -> Delivery:
        """Send every entry whose time has come in one POST; back off the lot if it fails."""
        entries = await self.outbox()
        due = {key: e for key, e in entries.items() if e.next_try_at <= now}
        if not due:
            return Delivery(sent=0, queued=len(entries))
        error = await self._post([e.alert for e in due.values()])
        if error is None:
            await self._redis.hdel(OUTBOX, *due)
            return Delivery(sent=len(due), queued=len(entries) - len(due))
        updated: dict[FieldT, EncodableT] = {}
        for key, entry in due.items():
            entry.attempts += 1
            entry.last_error = error
            entry.next_try_at = now + self.backoff_s(entry.attempts)
            updated[key] = json.dumps(asdict(entry), separators=(",", ":"))
        await self._redis.hset(OUTBOX, mapping=updated)
        logger.warning("monitoring sink: %d alerts queued (%s)", len(entries), error)
        return Delivery(sent=0, queued=len(entries))

    async def push(self, body: dict[str, Any]) -> bool:
        """POST one object (the metrics summary); True when the sink took it."""
        error = await self._post(body)
        if error is not None:
            logger.info("monitoring sink: metrics summary dropped (%s)", error)
        return error is None

    async def outbox(self) -> dict[str, OutboxEntry]:
        raw = await self._redis.hgetall(OUTBOX)
        return {text(key): OutboxEntry(**json.loads(value)) for key, value in raw.items()}

    def backoff_s(self, attempts: int) -> float:
        return float(min(self._rules.retry_base_s * 2 ** (attempts - 1), self._rules.retry_max_s))

    async def _post(self, body: list[dict[str, Any]] | dict[str, Any]) -> str | None:
        """None when the sink answered 2xx; otherwise what went wrong."""
        try:
            response = await self._client.post(
                self._url,
                json=body,
                headers=self._headers,
                timeout=self._rules.send_timeout_s,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return type(exc).__name__
        if response.is_success:
            return None
        return f"HTTP {response.status_code}"

    async def _trim(self) -> None:
        entries = await self.outbox()
        if len(entries) <= MAX_OUTBOX:
            return
        oldest = sorted(entries, key=lambda key: entries[key].queued_at)
        await self._redis.hdel(OUTBOX, *oldest[: len(entries) - MAX_OUTBOX])


def _key(alert: Mapping[str, Any]) -> str:
    return fingerprint(alert["labels"])


async def evaluate_and_alert(
    redis: Redis,
    events: EventLog,
    rules: AnalyticsSettings,
    monitoring: MonitoringSettings,
    now: float | None = None,
    circuits: Iterable[CircuitView] = (),
) -> dict[str, Any]:
    """One evaluation: detect, update the anomalies, send what is due (new, re-sends,
    resolves, the outbox's retries), push the metrics summary. Counts for the run record."""
    # A redelivered or overlapping run must not send the same transitions twice.
    lock = redis.lock(EVALUATING, timeout=max(30.0, 4 * rules.send_timeout_s), blocking=False)
    if not await lock.acquire():
        return {"skipped": "another evaluation is under way"}
    try:
        return await _evaluate(redis, events, rules, monitoring, now, circuits)
    finally:
        with contextlib.suppress(LockError):  # the lease ran out: someone else may hold it now
            await lock.release()


async def _evaluate(
    redis: Redis,
    events: EventLog,
    rules: AnalyticsSettings,
    monitoring: MonitoringSettings,
    now: float | None,
    circuits: Iterable[CircuitView],
) -> dict[str, Any]:
    now = time.time() if now is None else now
    store = AnomalyStore(redis, rules.history_size)
    scopes, transition = await evaluate_window(events, store, rules, now, circuits)
    outcome: dict[str, Any] = {
        "firing": len(transition.started) + len(transition.continuing),
        "started": len(transition.started),
        "resolved": len(transition.resolved),
        "sent": 0,
        "queued": 0,
        "summary_pushed": False,
    }
    if not monitoring.webhook_url:
        return outcome
    bearer = monitoring.api_key.get_secret_value() if monitoring.api_key else None
    firing = due_firing(transition, now, rules.resend_s)
    async with httpx.AsyncClient() as client:
        sender = AlertSender(redis, client, monitoring.webhook_url, bearer, rules)
        await sender.enqueue(
            (to_alert(a, rules.generator_url) for a in firing + transition.resolved), now
        )
        await store.mark_sent(firing, now)
        delivery = await sender.flush(now)
        pushed = await sender.push(metrics_summary(scopes, OVERALL, rules.window_s, now))
    return outcome | {"sent": delivery.sent, "queued": delivery.queued, "summary_pushed": pushed}
