"""GET /analytics/anomalies: what fires now and what fired lately (from `analytics.evaluate`)."""

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from app.analytics.alerts import rfc3339
from app.analytics.anomalies import Anomaly, AnomalyStore
from app.deps import RedisDep, SettingsDep
from app.errors import ServiceUnavailableError

router = APIRouter(prefix="/analytics", tags=["analytics"])


class AnomalyOut(BaseModel):
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str = Field(description="RFC 3339")
    ends_at: str | None = Field(description="RFC 3339; null while it fires")


class Anomalies(BaseModel):
    firing: list[AnomalyOut]
    history: list[AnomalyOut] = Field(description="Starts and resolves, newest first")


def _out(anomaly: Anomaly) -> AnomalyOut:
    return AnomalyOut(
        fingerprint=anomaly.fingerprint,
        labels=anomaly.labels,
        annotations=anomaly.annotations,
        starts_at=rfc3339(anomaly.starts_at),
        ends_at=None if anomaly.ends_at is None else rfc3339(anomaly.ends_at),
    )


@router.get(
    "/anomalies",
    name="get_anomalies",
    summary="Anomalies firing now and the recent history of starts and resolves",
    responses={503: {"description": "The state Redis holding them is unreachable"}},
)
async def get_anomalies(
    redis: RedisDep,
    settings: SettingsDep,
    limit: int = Query(default=50, ge=1, le=500, description="History entries to return"),
) -> Anomalies:
    store = AnomalyStore(redis, settings.analytics.history_size)
    try:
        firing = await store.current()
        history = await store.history(limit)
    except (RedisError, OSError) as exc:
        raise ServiceUnavailableError(
            "Anomalies live in Redis, which cannot be reached right now.",
            headers={"Retry-After": "5"},
        ) from exc
    return Anomalies(firing=[_out(a) for a in firing], history=[_out(a) for a in history])
