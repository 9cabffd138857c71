"""Waiting for a job through the API, as a client would."""

import asyncio
import time
from typing import Any

import httpx

JOBS = "/api/v1/voice/streaming/jobs/"


async def job_status(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(JOBS + job_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, timeout_s: float = 120.0, *, done_at_least: int = 0
) -> dict[str, Any]:
    """The job's status once it is completed (or, with done_at_least, has that many done)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = await job_status(client, job_id)
        if done_at_least and status["counts"]["done"] >= done_at_least:
            return status
        if not done_at_least and status["status"] == "completed":
            return status
        assert time.monotonic() < deadline, (
            f"job {job_id} not there in {timeout_s} s: {status['status']}, {status['counts']}"
        )
        await asyncio.sleep(0.2)
