"""GET /metrics: Prometheus exposition of every API and worker process (multiprocess mode)."""

import asyncio

from fastapi import APIRouter, Response

from app.observability import metrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    name="get_metrics",
    summary="Prometheus metrics of every API and worker process",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}, "description": "Text exposition"}},
)
async def get_metrics() -> Response:
    # One file per process and metric type is read: off the event loop.
    body = await asyncio.to_thread(metrics.exposition)
    return Response(body, media_type=metrics.CONTENT_TYPE)
