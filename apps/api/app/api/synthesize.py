"""POST /synthesize: text in, the whole audio out (binary, or JSON with base64)."""

import base64
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from app.api.lean_route import LeanRoute
from app.api.negotiation import require_json_body, wants_json
from app.api.schemas import ERROR_RESPONSES
from app.audio.formats import FORMATS
from app.deps import SynthesizerDep, charge_characters
from app.errors import request_id_of
from app.tts.models import Language, Persona, SynthesizeRequest
from app.tts.service import SynthesisResult

# The busiest route: served without FastAPI's generic handler (app.api.lean_route).
router = APIRouter(tags=["synthesis"], route_class=LeanRoute)


class SegmentReport(BaseModel):
    index: int
    text: str
    provider: str
    cache: str = Field(description="`hit`, `miss` or `bypass` for this segment")
    audio_duration_ms: int
    quality_score: float
    characters_billed: int


class SynthesisJSON(BaseModel):
    """The audio as base64, with everything the binary response says in headers."""

    request_id: str | None
    audio_base64: str
    content_type: str
    output_format: str
    provider: str = Field(
        description="`elevenlabs` or `espeak`; both, comma-separated, when "
        "the fallback spoke some segments"
    )
    language: Language
    language_detected: bool
    persona: Persona
    cache: str = Field(description="`hit`, `partial`, `miss` or `bypass`")
    quality_score: float
    audio_duration_ms: int
    characters_billed: int
    characters_saved: int = Field(description="What the cached segments cost when first made")
    segments: list[SegmentReport]


def _server_timing(timings: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in timings.items())


def synthesis_headers(result: SynthesisResult) -> dict[str, str]:
    """What the response headers say of a synthesis: cache, provider, language, quality."""
    plan = result.plan
    return {
        "X-Cache": result.cache.value,
        "X-Provider": ",".join(result.providers),
        "X-Language": plan.language.value,
        "X-Persona": plan.profile.persona.value,
        "X-Quality-Score": f"{result.quality:.3f}",
        "X-Audio-Duration-Ms": str(result.duration_ms),
    }


AUDIO_CONTENT: dict[str, Any] = {
    media: {"schema": {"type": "string", "format": "binary"}}
    for media in sorted({spec.media_type for spec in FORMATS.values()})
}


@router.post(
    "/synthesize",
    name="synthesize_speech",
    summary="Speak text in a persona's voice",
    dependencies=[Depends(require_json_body)],
    response_class=Response,
    responses={
        200: {
            "description": "The audio, in the requested `output_format`; with "
            "`Accept: application/json`, the same as JSON with `audio_base64`.",
            "model": SynthesisJSON,
            "content": AUDIO_CONTENT,
        },
        **ERROR_RESPONSES,
    },
)
async def synthesize_speech(
    body: SynthesizeRequest, request: Request, synthesizer: SynthesizerDep
) -> Response:
    started = time.perf_counter()
    await charge_characters(request, len(body.text))
    plan = await synthesizer.prepare(body)
    planned = time.perf_counter()
    result = await synthesizer.synthesize_all(plan)
    done = time.perf_counter()
    timings = {
        "resolve": planned - started,
        "first_segment": result.first_audio_s,
        "synthesis": done - planned,
        "total": done - started,
    }
    headers = {**synthesis_headers(result), "Server-Timing": _server_timing(timings)}
    if wants_json(request.headers.get("accept")):
        payload = SynthesisJSON(
            request_id=request_id_of(request),
            audio_base64=base64.b64encode(result.body).decode("ascii"),
            content_type=plan.spec.media_type,
            output_format=plan.spec.format.value,
            provider=headers["X-Provider"],
            language=plan.language,
            language_detected=plan.language_detected,
            persona=plan.profile.persona,
            cache=headers["X-Cache"],
            quality_score=result.quality,
            audio_duration_ms=result.duration_ms,
            characters_billed=result.characters_billed,
            characters_saved=result.characters_saved,
            segments=[
                SegmentReport(
                    index=s.index,
                    text=s.text,
                    provider=s.provider.value,
                    cache=s.cache.value,
                    audio_duration_ms=s.duration_ms,
                    quality_score=s.quality,
                    characters_billed=s.characters_billed,
                )
                for s in result.segments
            ],
        )
        return JSONResponse(payload.model_dump(mode="json"), headers=headers)
    return Response(result.body, media_type=plan.spec.media_type, headers=headers)
