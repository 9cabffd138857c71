"""Bulk synthesis, pre-generation and job progress (the Celery-backed surfaces).

POST /streaming/synthesize/bulk answers small batches in one response (foreground) or queues a
job; GET /streaming/jobs/{job_id} shows its progress and each item; each item's audio comes
from /streaming/jobs/{job_id}/items/{index}/audio; POST /streaming/pregenerate queues the
phrase catalog of an agent or persona.
"""

import asyncio
import base64
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.negotiation import require_json_body
from app.api.schemas import ERROR_RESPONSES, NOT_FOUND
from app.api.synthesize import AUDIO_CONTENT, synthesis_headers
from app.audio.formats import OutputFormat, spec_of
from app.deps import (
    AgentsDep,
    DetectorDep,
    JobAudioDep,
    JobsDep,
    SettingsDep,
    SubmitterDep,
    SynthesizerDep,
    charge_characters,
)
from app.errors import AppError, NotFoundError, ValidationFailedError
from app.jobs.store import ItemFigures, ItemResult, ItemState, JobItem, JobKind, JobRecord
from app.tts import batch
from app.tts.models import AgentId, Language, Persona, SynthesizeRequest

router = APIRouter(prefix="/streaming", tags=["jobs"])

MAX_BULK_ITEMS = 1000


class BulkItem(SynthesizeRequest):
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Your id for the item, echoed in results; unique within the request.",
    )


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BulkItem] = Field(min_length=1, max_length=MAX_BULK_ITEMS)
    background: bool = Field(
        default=False,
        description="Queue a job (202 with `job_id`); otherwise up to 20 items are answered "
        "in this response.",
    )


class ItemOutcome(ItemFigures):
    index: int
    id: str | None
    content_type: str
    audio_url: str | None = Field(default=None, description="Background jobs: the item's audio")
    audio_base64: str | None = Field(default=None, description="Foreground: the audio itself")


class BulkResults(BaseModel):
    items: list[ItemOutcome]


class JobAccepted(BaseModel):
    job_id: str
    kind: JobKind
    status_url: str
    total: int
    chunks: int
    notes: list[str]


class JobCounts(BaseModel):
    queued: int
    done: int
    failed: int
    cached: int = Field(description="Items answered from the cache (no upstream call)")


class JobStatus(BaseModel):
    job_id: str
    kind: JobKind
    status: str = Field(description="`queued`, `running` or `completed`")
    total: int
    counts: JobCounts
    created_at: float
    updated_at: float
    finished_at: float | None
    notes: list[str]
    items_offset: int
    items: list[ItemOutcome]


class PregenerateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"voice_agent_id": "agent_maple_01", "language": "en"}]},
    )

    voice_agent_id: AgentId | None = Field(
        default=None,
        description="Pre-generate this agent's persona catalog and custom phrases, with its "
        "voices (404 if the agent does not exist).",
    )
    persona: Persona | None = Field(
        default=None, description="The persona; default: the agent's, or all five."
    )
    language: Language | Literal["all"] | None = Field(
        default=None, description="One language; default (or `all`): the agent's, or all three."
    )
    output_formats: list[OutputFormat] | None = Field(
        default=None,
        min_length=1,
        max_length=len(OutputFormat),
        description="Formats to cache; default: mp3_44100_128 (web) and ulaw_8000 (phone).",
    )


class DuplicateItemIdError(ValidationFailedError):
    code = "duplicate_item_id"


class ItemNotReadyError(AppError):
    status_code = 409
    code = "item_not_ready"


class ItemFailedError(AppError):
    status_code = 409
    code = "item_failed"


def _check_ids(items: list[BulkItem]) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.id is None:
            continue
        if item.id in seen:
            raise DuplicateItemIdError(
                f"items[{index}] repeats the id {item.id!r} of items[{seen[item.id]}]; "
                "ids must be unique. Nothing was queued.",
                details={"index": index, "id": item.id, "first_index": seen[item.id]},
            )
        seen[item.id] = index


def _accepted(record: JobRecord, request: Request) -> JSONResponse:
    body = JobAccepted(
        job_id=record.job_id,
        kind=record.kind,
        status_url=str(request.url_for("get_job", job_id=record.job_id).path),
        total=record.total,
        chunks=record.chunks,
        notes=record.notes,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/synthesize/bulk",
    name="synthesize_bulk",
    summary="Speak many texts: up to 20 in one response, or up to 1000 as a background job",
    dependencies=[Depends(require_json_body)],
    status_code=200,
    responses={
        200: {"model": BulkResults, "description": "Foreground: every item's audio."},
        202: {"model": JobAccepted, "description": "Background: the job is queued."},
        **ERROR_RESPONSES,
    },
)
async def synthesize_bulk(
    body: BulkRequest,
    request: Request,
    settings: SettingsDep,
    synthesizer: SynthesizerDep,
    submitter: SubmitterDep,
) -> Response:
    _check_ids(body.items)
    await charge_characters(request, sum(len(item.text) for item in body.items))
    if body.background:
        items = [
            JobItem(request=SynthesizeRequest(**item.model_dump(exclude={"id"})), id=item.id)
            for item in body.items
        ]
        record = await submitter.submit(JobKind.BULK, items, notes=[])
        return _accepted(record, request)
    limit = settings.jobs.foreground_max_items
    if len(body.items) > limit:
        raise ValidationFailedError(
            f"Foreground bulk takes at most {limit} items; send background: true for "
            f"{len(body.items)}.",
            details={"max_items": limit, "items": len(body.items)},
        )
    gate = asyncio.Semaphore(settings.synthesis.segment_concurrency)

    async def speak(index: int, item: BulkItem) -> ItemOutcome:
        audio: str | None = None
        async with gate:
            try:
                plan = await synthesizer.prepare(item)
                result = await synthesizer.synthesize_all(plan)
            except AppError as exc:
                outcome = batch.failed_result(exc)
            else:
                outcome = batch.done_result(result)
                audio = base64.b64encode(result.body).decode("ascii")
        return ItemOutcome(
            index=index,
            id=item.id,
            **outcome.model_dump(exclude={"stored"}),
            content_type=spec_of(item.output_format).media_type,
            audio_base64=audio,
        )

    outcomes = await asyncio.gather(*(speak(i, item) for i, item in enumerate(body.items)))
    return JSONResponse(BulkResults(items=list(outcomes)).model_dump(mode="json"))


@router.get(
    "/jobs/{job_id}",
    name="get_job",
    summary="A job's progress, counts and items",
    responses=NOT_FOUND,
)
async def get_job(
    request: Request,
    jobs: JobsDep,
    job_id: Annotated[str, Path(max_length=64)],
    items_offset: Annotated[int, Query(ge=0)] = 0,
    items_limit: Annotated[int, Query(ge=0, le=MAX_BULK_ITEMS)] = MAX_BULK_ITEMS,
) -> JobStatus:
    record = await jobs.require(job_id)
    indices = list(range(items_offset, min(record.total, items_offset + items_limit)))
    items = await jobs.items(job_id, indices)
    results = await jobs.results(job_id, indices)
    outcomes = [
        _outcome(request, job_id, index, items[index], results.get(index))
        for index in indices
        if index in items
    ]
    return JobStatus(
        job_id=job_id,
        kind=record.kind,
        status=record.state.value,
        total=record.total,
        counts=JobCounts(
            queued=record.queued, done=record.done, failed=record.failed, cached=record.cached
        ),
        created_at=record.created_at,
        updated_at=record.updated_at,
        finished_at=record.finished_at,
        notes=record.notes,
        items_offset=items_offset,
        items=outcomes,
    )


def _outcome(
    request: Request, job_id: str, index: int, item: JobItem, result: ItemResult | None
) -> ItemOutcome:
    content_type = spec_of(item.request.output_format).media_type
    if result is None:
        return ItemOutcome(
            index=index, id=item.id, status=ItemState.QUEUED, content_type=content_type
        )
    audio_url = None
    if result.status == ItemState.DONE:
        audio_url = str(request.url_for("get_job_item_audio", job_id=job_id, index=index).path)
    return ItemOutcome(
        index=index,
        id=item.id,
        **result.model_dump(exclude={"stored"}),
        content_type=content_type,
        audio_url=audio_url,
    )


@router.get(
    "/jobs/{job_id}/items/{index}/audio",
    name="get_job_item_audio",
    summary="One job item's audio",
    response_class=Response,
    responses={
        200: {"description": "The item's audio in its output format.", "content": AUDIO_CONTENT},
        409: {"description": "The item is not done yet, or failed."},
        **NOT_FOUND,
    },
)
async def get_job_item_audio(
    jobs: JobsDep,
    job_audio: JobAudioDep,
    synthesizer: SynthesizerDep,
    job_id: Annotated[str, Path(max_length=64)],
    index: Annotated[int, Path(ge=0)],
) -> Response:
    record = await jobs.require(job_id)
    item = (await jobs.items(job_id, [index])).get(index) if index < record.total else None
    if item is None:
        raise NotFoundError(
            f"Job {job_id} has no item {index} (it has {record.total}).",
            details={"job_id": job_id, "index": index, "total": record.total},
        )
    result = (await jobs.results(job_id, [index])).get(index)
    if result is None:
        raise ItemNotReadyError(
            f"Item {index} of job {job_id} is not synthesized yet.",
            details={"job_id": job_id, "index": index},
            headers={"Retry-After": "1"},
        )
    if result.status == ItemState.FAILED:
        raise ItemFailedError(
            f"Item {index} of job {job_id} failed.",
            details={"job_id": job_id, "index": index, "error": result.error},
        )
    media_type = spec_of(item.request.output_format).media_type
    if result.stored and (audio := await job_audio.get(job_id, index)) is not None:
        return Response(audio, media_type=media_type, headers={"X-Job-Item": "stored"})
    # In the shared cache (pinned for the job's life): the synthesis path answers from it, and
    # if it was evicted after all, it makes the audio again rather than lose it.
    plan = await synthesizer.prepare(item.request, catalog=item.catalog)
    spoken = await synthesizer.synthesize_all(plan)
    return Response(spoken.body, media_type=media_type, headers=synthesis_headers(spoken))


@router.post(
    "/pregenerate",
    name="pregenerate_phrases",
    summary="Queue the phrase catalog of an agent or persona for the cache (7-day TTL)",
    dependencies=[Depends(require_json_body)],
    status_code=status.HTTP_202_ACCEPTED,
    responses={202: {"model": JobAccepted}, 404: NOT_FOUND[404], **ERROR_RESPONSES},
)
async def pregenerate_phrases(
    body: PregenerateRequest,
    request: Request,
    settings: SettingsDep,
    agents: AgentsDep,
    detector: DetectorDep,
    submitter: SubmitterDep,
) -> Response:
    record = await batch.submit_pregeneration(
        batch.PregenerationParts(agents=agents, detector=detector, submitter=submitter),
        voice_agent_id=body.voice_agent_id,
        persona=body.persona,
        language=None if body.language in (None, "all") else Language(body.language),
        formats=body.output_formats or settings.jobs.pregenerate_formats,
    )
    return _accepted(record, request)
