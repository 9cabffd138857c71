"""POST /streaming/synthesize/streaming: the /synthesize body, answered as a chunked stream."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from app.api.negotiation import require_json_body
from app.api.schemas import ERROR_RESPONSES
from app.api.synthesize import AUDIO_CONTENT
from app.deps import StreamWatchDep, SynthesizerDep, charge_characters
from app.errors import request_id_of
from app.streaming.chunked import chunked_body
from app.tts.models import SynthesizeRequest
from app.tts.service import SegmentStarted

router = APIRouter(prefix="/streaming", tags=["streaming"])


@router.post(
    "/synthesize/streaming",
    name="stream_speech",
    summary="Speak text as a chunked stream that starts before synthesis ends",
    dependencies=[Depends(require_json_body)],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Audio in the requested format, sent as it is produced. Headers "
            "describe the first segment (later ones may differ in provider or cache outcome).",
            "content": AUDIO_CONTENT,
        },
        **ERROR_RESPONSES,
    },
)
async def stream_speech(
    body: SynthesizeRequest,
    request: Request,
    synthesizer: SynthesizerDep,
    streams: StreamWatchDep,
) -> StreamingResponse:
    await charge_characters(request, len(body.text))
    plan = await synthesizer.prepare(body)
    events = synthesizer.stream(plan)
    # Waiting for the first segment to start costs nothing (its audio is the first byte) and
    # lets a total failure still answer with a proper status and JSON error.
    first = await anext(events)
    assert isinstance(first, SegmentStarted)
    headers = {
        "X-Provider": first.provider.value,
        "X-Cache": first.cache.value,
        "X-Language": plan.language.value,
        "X-Persona": plan.profile.persona.value,
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # proxies must pass each chunk on, not collect them
    }
    tracked = streams.track("http", request_id_of(request) or "unknown")
    return StreamingResponse(
        chunked_body(first, events, plan.spec, tracked),
        media_type=plan.spec.media_type,
        headers=headers,
    )
