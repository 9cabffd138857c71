"""Bulk synthesis and phrase pre-generation: job items spoken through the one synthesis path.

A chunk task synthesizes the items of its chunk that have no result yet, a few at a time, on
the limiter's bulk slots, and records each item's outcome once. Redoing a chunk (its worker
died) costs nothing for the items already recorded, and the items already cached are hits.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from app.agents import Agent, AgentStore
from app.audio.formats import OutputFormat
from app.catalog import catalog_phrases
from app.errors import AppError
from app.jobs.store import ItemResult, ItemState, JobItem, JobKind, JobRecord, JobStore
from app.jobs.submission import JobSubmitter
from app.limits.upstream import Priority
from app.observability import metrics
from app.services import Services
from app.tts.language import LanguageDetector
from app.tts.models import Language, LanguageChoice, Persona, SynthesizeRequest
from app.tts.service import CacheOutcome, SynthesisResult

logger = logging.getLogger(__name__)

UNREADABLE_ITEM_CODE = "item_unreadable"


async def synthesize_chunk(services: Services, job_id: str, chunk: int) -> dict[str, int]:
    """Synthesize chunk `chunk` of job `job_id`; returns how many items it did now."""
    jobs = services.jobs
    found = await _open_items(jobs, job_id, chunk)
    if found is None:
        logger.info(
            "job %s is gone (past retention or never queued): chunk %d skipped", job_id, chunk
        )
        return {"items": 0, "skipped": 1}
    record, indices, todo = found
    if not todo:
        return {"items": 0, "already_done": len(indices)}
    await jobs.mark_running(job_id)
    items = await jobs.items(job_id, todo)
    unreadable = failure(UNREADABLE_ITEM_CODE, "The item's stored request cannot be read.")
    for index in todo:
        if index not in items:  # damaged (or gone with the job): nothing to say
            await _settle(jobs, record, index, unreadable)
    gate = asyncio.Semaphore(services.settings.jobs.item_concurrency)

    async def run(index: int, item: JobItem) -> None:
        async with gate:
            result = await synthesize_item(services, job_id, index, item)
        await _settle(jobs, record, index, result)

    try:
        async with asyncio.TaskGroup() as group:
            for index, item in items.items():
                group.create_task(run(index, item))
    except ExceptionGroup as failures:
        # Celery decides by the exception's type whether to retry (a Redis restart is
        # transient): the task raises the first item's failure, not the group around it.
        raise _first_of(failures) from failures
    return {"items": len(items)}


async def fail_unfinished(
    services: Services, job_id: str, chunk: int, code: str, message: str
) -> int:
    """Record every item of the chunk still without an outcome as failed; how many were.

    For a chunk task that failed for good: otherwise its items stay queued, and the job
    `running`, until the job expires.
    """
    jobs = services.jobs
    found = await _open_items(jobs, job_id, chunk)
    if found is None:
        return 0
    record, _, todo = found
    result = failure(code, message)
    return sum([await _settle(jobs, record, index, result) for index in todo])


async def _open_items(
    jobs: JobStore, job_id: str, chunk: int
) -> tuple[JobRecord, list[int], list[int]] | None:
    """The job, the chunk's item indices and those still without an outcome; None if gone."""
    record = await jobs.get(job_id)
    if record is None:
        return None
    indices = list(record.chunk_indices(chunk))
    finished = await jobs.results(job_id, indices)
    return record, indices, [index for index in indices if index not in finished]


async def _settle(jobs: JobStore, record: JobRecord, index: int, result: ItemResult) -> bool:
    """Record an item's outcome and count it; False when it had one already."""
    counted = await jobs.record(record.job_id, index, result)
    if counted:
        metrics.JOB_ITEMS.labels(record.kind, _item_outcome(result)).inc()
    return counted


def _first_of(failures: ExceptionGroup) -> Exception:
    first = failures.exceptions[0]
    return _first_of(first) if isinstance(first, ExceptionGroup) else first


async def synthesize_item(services: Services, job_id: str, index: int, item: JobItem) -> ItemResult:
    """One item's audio, left where its download will find it: the cache or the job's store."""
    synthesizer = services.synthesizer
    settings = services.settings
    try:
        plan = await synthesizer.prepare(
            item.request,
            catalog=item.catalog,
            priority=Priority.BULK,
            budget_s=settings.jobs.bulk_budget_s,
        )
        result = await synthesizer.synthesize_all(plan)
    except AppError as exc:
        logger.warning("job %s item %d failed: %s", job_id, index, exc.message)
        return failed_result(exc)
    stored = False
    if item.request.cache:
        ttl = settings.cache.catalog_ttl_s if item.catalog else services.jobs.retention_s
        present = await services.cache.pin(list(plan.keys), ttl, catalog=item.catalog)
        stored = present != len(plan.keys)
    else:
        stored = True
    if stored:
        # Not (all) in the shared cache: a fallback voice spoke, or `cache: false`.
        await services.job_audio.keep(job_id, index, result.body)
    return done_result(result, stored=stored)


def done_result(result: SynthesisResult, *, stored: bool = False) -> ItemResult:
    """What an item's outcome says of its synthesis (`stored`: its audio is kept with the job)."""
    return ItemResult(
        status=ItemState.DONE,
        cache=result.cache.value,
        provider=",".join(result.providers),
        audio_duration_ms=result.duration_ms,
        quality_score=result.quality,
        characters_billed=result.characters_billed,
        stored=stored,
    )


def failed_result(exc: AppError) -> ItemResult:
    return failure(exc.code, exc.message)


def failure(code: str, message: str) -> ItemResult:
    return ItemResult(status=ItemState.FAILED, error={"code": code, "message": message})


def _item_outcome(result: ItemResult) -> str:
    """done, failed, or cached: done without any synthesis (every segment was in the cache)."""
    if result.status == ItemState.FAILED:
        return "failed"
    return "cached" if result.cache == CacheOutcome.HIT else "done"


def pregeneration_items(
    *,
    personas: list[Persona],
    languages: list[Language],
    formats: list[OutputFormat],
    agent: Agent | None,
    detector: LanguageDetector,
) -> list[JobItem]:
    """Every catalog phrase of the personas and languages (and the agent's own phrases in
    those languages), in every format, as catalog items."""
    texts: list[tuple[Persona, Language, str]] = [
        (persona, language, phrase.text)
        for persona in personas
        for language in languages
        for phrase in catalog_phrases(persona, language)
    ]
    if agent is not None:
        for phrase in agent.custom_phrases:
            language = detector.detect(phrase)
            if language in languages:
                texts.extend((persona, language, phrase) for persona in personas)
    return [
        JobItem(
            request=SynthesizeRequest(
                text=text,
                persona=persona,
                voice_agent_id=agent.voice_agent_id if agent is not None else None,
                language=LanguageChoice(language.value),
                output_format=output_format,
            ),
            catalog=True,
        )
        for persona, language, text in dict.fromkeys(texts)
        for output_format in formats
    ]


async def submit_pregeneration(
    services: "PregenerationDeps",
    *,
    voice_agent_id: str | None,
    persona: Persona | None,
    language: Language | None,
    formats: list[OutputFormat],
    note: str | None = None,
) -> JobRecord:
    """Queue a job for the catalog phrases of an agent (its persona, languages and custom
    phrases) or of a persona, in one language or all; AgentNotFoundError for unknown agents."""
    agent = await services.agents.require(voice_agent_id) if voice_agent_id else None
    personas = [persona] if persona else [agent.persona] if agent else list(Persona)
    languages = [language] if language else list(agent.languages) if agent else list(Language)
    items = pregeneration_items(
        personas=personas,
        languages=languages,
        formats=formats,
        agent=agent,
        detector=services.detector,
    )
    notes = [note] if note else []
    notes.append(
        f"{len(items)} items: personas {', '.join(personas)}; languages {', '.join(languages)}; "
        f"formats {', '.join(formats)}"
        + (
            f"; {len(agent.custom_phrases)} custom phrases of {agent.voice_agent_id}"
            if agent
            else ""
        )
    )
    return await services.submitter.submit(JobKind.PREGENERATE, items, notes)


class PregenerationDeps(Protocol):
    """What pre-generation needs: the worker's Services and the API's parts both fit."""

    @property
    def agents(self) -> AgentStore: ...

    @property
    def detector(self) -> LanguageDetector: ...

    @property
    def submitter(self) -> JobSubmitter: ...


@dataclass(frozen=True, slots=True)
class PregenerationParts:
    agents: AgentStore
    detector: LanguageDetector
    submitter: JobSubmitter
