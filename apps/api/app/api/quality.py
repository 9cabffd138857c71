"""POST /streaming/quality/analyze: the quality report of an uploaded clip or of a synthesis.

Two ways in: a multipart upload (field `file`, any format libsndfile reads, or raw PCM/G.711
named by `output_format`), or a synthesize body as JSON, which is synthesized and analysed
per segment and as a whole. Decoding and scoring run in a worker thread.
"""

import asyncio
import io
import re
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.schemas import ErrorBody
from app.audio import codecs, quality, quality_report
from app.audio.formats import OutputFormat, spec_of
from app.deps import DetectorDep, SettingsDep, SynthesizerDep
from app.errors import (
    BadRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
    request_id_of,
)
from app.tts.models import MAX_TEXT_CHARS, Language, LanguageChoice, SynthesizeRequest
from app.tts.segmenting import spoken_length
from app.tts.service import SynthesisResult

router = APIRouter(prefix="/streaming", tags=["quality"])

Int16Array = npt.NDArray[np.int16]

# Decoded audio is held whole while it is scored (about 6 bytes a sample at the peak): ten
# minutes at 48 kHz. A 10 MB upload of low-bitrate MP3 or of FLAC silence could be hours.
MAX_SAMPLES = 600 * 48_000
_MULTIPART = "multipart/form-data"
_JSON = "application/json"
# text, language and output_format, and room to name a few unknown ones in a 422.
_MAX_FORM_FIELDS = 8
_RAW_ENCODINGS = ("pcm", "ulaw", "alaw")
_LIBSNDFILE_PREFIX = re.compile(r"^Error opening .*?: ")


class UnreadableAudioError(ValidationFailedError):
    code = "unreadable_audio"


class EmptyAudioError(ValidationFailedError):
    code = "empty_audio"


class AudioTooLongError(ValidationFailedError):
    code = "audio_too_long"


class MalformedFormError(BadRequestError):
    code = "malformed_form"


Verdict = Literal["good", "fair", "poor", "not_measured"]


class MeasureReport(BaseModel):
    name: str = Field(
        description="`duration`, `leading_silence`, `trailing_silence`, `longest_pause`, "
        "`pause_share`, `clipping`, `loudness`, `spectral_flatness` or `truncation`"
    )
    value: float | None = Field(description="In `unit`; null when it could not be measured")
    unit: str = Field(description="`s`, `ratio` (0–1), `LUFS` or `dB`")
    score: float | None = Field(description="The 0–1 sub-score this measure feeds")
    verdict: Verdict
    detail: str = Field(description="What the value means, in a sentence")


class QualityReportBody(BaseModel):
    score: float = Field(ge=0, le=1, description="0–1; 0.8 and above is good speech")
    verdict: Verdict
    duration_s: float = Field(description="Length of the audio analysed")
    expected_duration_s: float | None = Field(
        description="How long the text takes to say; null when no text was given"
    )
    measures: list[MeasureReport]
    recommendations: list[str] = Field(description="What to do, worst problem first")


class SegmentQuality(QualityReportBody):
    index: int
    text: str
    provider: str
    cache: str = Field(description="`hit`, `miss` or `bypass` for this segment")


class QualityAnalysis(QualityReportBody):
    """The report of the whole audio; for a synthesis, each segment's report too."""

    request_id: str | None
    source: Literal["upload", "synthesis"]
    format: str = Field(
        description="What was decoded: the file's container (WAV, MP3, FLAC, OGG, …) or the "
        "raw `output_format`; for a synthesis, its output format"
    )
    sample_rate: int
    language: Language | None = Field(
        description="The text's language (given, or detected); null without a text"
    )
    provider: str | None = Field(description="Synthesis only: who spoke, as in `X-Provider`")
    cache: str | None = Field(description="Synthesis only: as in `X-Cache`")
    segments: list[SegmentQuality] = Field(
        default_factory=list, description="Synthesis only: each segment's own report"
    )


class UploadFields(BaseModel):
    """The form fields that come with an uploaded file."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    language: LanguageChoice = LanguageChoice.AUTO
    output_format: OutputFormat | None = None

    @field_validator("text", "output_format", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The audio, at most 10 MB: WAV, MP3, FLAC or OGG, or "
                        "raw samples when `output_format` names a raw format.",
                    },
                    "text": {
                        "type": "string",
                        "maxLength": MAX_TEXT_CHARS,
                        "description": "What the audio says: gives the expected duration.",
                    },
                    "language": {
                        "type": "string",
                        "enum": [choice.value for choice in LanguageChoice],
                        "default": "auto",
                        "description": "The text's language; `auto` detects it.",
                    },
                    "output_format": {
                        "type": "string",
                        "enum": [fmt.value for fmt in OutputFormat],
                        "description": "Needed for raw audio (`pcm_16000`, `ulaw_8000`, …): "
                        "how to read the bytes. Files describe themselves.",
                    },
                },
            }
        },
        "application/json": {"schema": {"$ref": "#/components/schemas/SynthesizeRequest"}},
    },
}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _validation_error(exc: ValidationError) -> RequestValidationError:
    """Pydantic's errors as FastAPI's, located in the body like every other route's."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in errors])


async def _synthesize_body(request: Request) -> SynthesizeRequest:
    try:
        return SynthesizeRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _validation_error(exc) from exc


async def _read_form(request: Request, max_bytes: int) -> tuple[bytes, UploadFields]:
    try:
        form: FormData = await request.form(max_files=1, max_fields=_MAX_FORM_FIELDS)
    except StarletteHTTPException as exc:
        raise MalformedFormError(f"The multipart body could not be read: {exc.detail}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationFailedError(
                "Send the audio as a file in the form field `file`.",
                details=[{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}],
            )
        data = await upload.read(max_bytes + 1)
        # Unknown fields, and files where text belongs, are the model's to refuse.
        fields = {name: value for name, value in form.multi_items() if name != "file"}
    finally:
        await form.close()
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"The file is larger than {max_bytes} bytes.", details={"max_bytes": max_bytes}
        )
    try:
        return data, UploadFields.model_validate(fields)
    except ValidationError as exc:
        raise _validation_error(exc) from exc


def _check_length(samples: int) -> None:
    if samples > MAX_SAMPLES:
        raise AudioTooLongError(
            f"The audio is too long to analyse: at most {MAX_SAMPLES:,} samples "
            "(10 minutes at 48 kHz).",
            details={"samples": samples, "max_samples": MAX_SAMPLES},
        )


def _decode_upload(data: bytes, output_format: OutputFormat | None) -> tuple[Int16Array, int, str]:
    """Mono PCM, its rate, and what it was, from the uploaded bytes (CPU: run in a thread)."""
    if not data:
        raise EmptyAudioError("The uploaded file is empty.")
    spec = None if output_format is None else spec_of(output_format)
    if spec is not None and spec.encoding in _RAW_ENCODINGS and not spec.wav:
        _check_length(len(data) // spec.bytes_per_sample)
        pcm, rate, label = codecs.decode(data, spec), spec.sample_rate, spec.format.value
    else:
        try:
            info = sf.info(io.BytesIO(data))
            _check_length(info.frames * info.channels)
            pcm, rate = codecs.decode_file(data)
        except (sf.LibsndfileError, RuntimeError, TypeError, codecs.AudioDecodeError) as exc:
            reason = _LIBSNDFILE_PREFIX.sub("", str(exc)).strip()
            raise UnreadableAudioError(
                "The file is not audio in a format we read (WAV, MP3, FLAC, OGG), or it is "
                "damaged or cut short. Raw samples need `output_format`.",
                details={"reason": reason},
            ) from exc
        label = str(info.format)
    if pcm.size == 0:
        raise EmptyAudioError(
            "The file holds no audio samples.", details={"format": label, "sample_rate": rate}
        )
    return pcm, rate, label


def _report(pcm: Int16Array, rate: int, text: str | None) -> quality_report.QualityReport:
    measures = quality.measure(pcm, rate, None if text is None else spoken_length(text))
    return quality_report.report(measures)


def _analyse_upload(
    data: bytes, fields: UploadFields
) -> tuple[quality_report.QualityReport, int, str]:
    pcm, rate, label = _decode_upload(data, fields.output_format)
    return _report(pcm, rate, fields.text), rate, label


def _analyse_synthesis(
    result: SynthesisResult,
) -> tuple[quality_report.QualityReport, list[quality_report.QualityReport]]:
    wire = result.plan.wire
    pcms = [codecs.decode(segment.audio, wire) for segment in result.segments]
    per_segment = [
        _report(pcm, wire.sample_rate, segment.text)
        for pcm, segment in zip(pcms, result.segments, strict=True)
    ]
    whole = np.concatenate([np.zeros(0, dtype=np.int16), *pcms])
    return _report(whole, wire.sample_rate, result.plan.request.text), per_segment


@router.post(
    "/quality/analyze",
    name="analyze_quality",
    summary="Score speech audio: each quality measure, the score and what to do about it",
    description="Upload a clip (multipart, field `file`, up to 10 MB) with the `text` it "
    "says for the expected duration, or send a synthesize body as JSON to have it spoken and "
    "analysed per segment. Measures: duration against the text, silence before, after and "
    "inside speech, clipping, loudness (ITU-R BS.1770-4 LUFS), spectral flatness (noise) and "
    "truncation (a cut-off end).",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        200: {"description": "The quality report."},
        400: _error("The multipart body is malformed."),
        413: _error("The upload is larger than 10 MB."),
        415: _error("The body is neither multipart/form-data nor JSON."),
        422: _error(
            "Invalid fields (`details` says which), or audio that cannot be analysed: "
            "`unreadable_audio`, `empty_audio`, `audio_too_long`."
        ),
        503: _error("Synthesis only: no provider could speak right now."),
    },
)
async def analyze_quality(
    request: Request,
    settings: SettingsDep,
    synthesizer: SynthesizerDep,
    detector: DetectorDep,
) -> QualityAnalysis:
    media_type = _media_type(request)
    if media_type == _MULTIPART:
        data, fields = await _read_form(request, settings.server.max_upload_bytes)
        report, rate, label = await asyncio.to_thread(_analyse_upload, data, fields)
        language = None
        if fields.text is not None:
            language = (
                detector.detect(fields.text)
                if fields.language == LanguageChoice.AUTO
                else Language(fields.language.value)
            )
        return QualityAnalysis(
            **asdict(report),
            request_id=request_id_of(request),
            source="upload",
            format=label,
            sample_rate=rate,
            language=language,
            provider=None,
            cache=None,
        )
    if media_type == _JSON or media_type.endswith("+json"):
        body = await _synthesize_body(request)
        plan = await synthesizer.prepare(body)
        result = await synthesizer.synthesize_all(plan)
        whole, per_segment = await asyncio.to_thread(_analyse_synthesis, result)
        return QualityAnalysis(
            **asdict(whole),
            request_id=request_id_of(request),
            source="synthesis",
            format=plan.spec.format.value,
            sample_rate=plan.wire.sample_rate,
            language=plan.language,
            provider=",".join(result.providers),
            cache=result.cache.value,
            segments=[
                SegmentQuality(
                    **asdict(segment_report),
                    index=segment.index,
                    text=segment.text,
                    provider=segment.provider.value,
                    cache=segment.cache.value,
                )
                for segment, segment_report in zip(result.segments, per_segment, strict=True)
            ],
        )
    raise UnsupportedMediaTypeError(
        "Send an audio file as multipart/form-data (field `file`), or a synthesize body as "
        "application/json.",
        details={"content_type": media_type or None, "accepted": [_MULTIPART, _JSON]},
    )
