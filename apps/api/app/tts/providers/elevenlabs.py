"""Our thin client of ElevenLabs' streaming text-to-speech REST endpoint."""

import json
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from app.cache.keys import SegmentIdentity
from app.tts.errors import (
    ProviderError,
    ProviderNotConfiguredError,
    UpstreamAuthError,
    UpstreamProtocolError,
    UpstreamQuotaExceededError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)
from app.tts.models import Provider
from app.tts.providers.base import ProviderRequest, ProviderUsage

logger = logging.getLogger(__name__)

_QUOTA_STATUSES = frozenset({"quota_exceeded", "insufficient_credits"})


def build_body(request: ProviderRequest) -> dict[str, Any]:
    """The JSON body: only what we mean to set, as the official SDK sends it."""
    profile = request.profile
    body: dict[str, Any] = {
        "text": request.text,
        "model_id": profile.model_id,
        "voice_settings": profile.settings.model_dump(),
    }
    if profile.sends_language_code:
        body["language_code"] = request.language.value
    if request.previous_text:
        body["previous_text"] = request.previous_text
    if request.next_text:
        body["next_text"] = request.next_text
    return body


def _finite_header(headers: httpx.Headers, name: str) -> float | None:
    """A numeric header; None when absent or not a finite number ("inf" would overflow int())."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    number = _finite_header(headers, name)
    return None if number is None else int(number)


def _retry_after_s(headers: httpx.Headers) -> float | None:
    if (ms := _finite_header(headers, "retry-after-ms")) is not None:
        return max(0.0, ms / 1000)
    if (seconds := _finite_header(headers, "retry-after")) is not None:
        return max(0.0, seconds)
    return None


def _detail(body: bytes) -> tuple[str, str]:
    """(status-or-code, message) from any of ElevenLabs' three error body shapes."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", body[:200].decode("utf-8", "replace")
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    if isinstance(detail, dict):
        status = str(detail.get("status") or detail.get("code") or "")
        codes = {str(detail.get("status") or ""), str(detail.get("code") or "")}
        if codes & _QUOTA_STATUSES:
            status = "quota_exceeded"
        return status, str(detail.get("message") or "")
    if isinstance(detail, list):
        return "validation_error", "; ".join(
            str(item.get("msg", "")) for item in detail if isinstance(item, dict)
        )
    return "", str(detail or "")[:200]


def classify(status_code: int, headers: httpx.Headers, body: bytes) -> ProviderError:
    """An upstream error response as one of our error types."""
    status, message = _detail(body)
    provider = Provider.ELEVENLABS
    text = f"ElevenLabs answered {status_code} {status}: {message}".strip()
    if status_code in (401, 402) and status == "quota_exceeded":
        return UpstreamQuotaExceededError(provider, text, status=status_code)
    if status_code == 401:
        return UpstreamAuthError(provider, text, status=status_code)
    if status_code == 429:
        return UpstreamRateLimitedError(provider, text, retry_after_s=_retry_after_s(headers))
    if status_code == 408:
        return UpstreamTimeoutError(provider, text, status=status_code)
    if status_code >= 500:
        return UpstreamServerError(provider, text, status=status_code)
    return UpstreamRejectedError(provider, text, status=status_code)


class ElevenLabsProvider:
    """POST /v1/text-to-speech/{voice_id}/stream over a pooled httpx client."""

    name = Provider.ELEVENLABS

    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: str | None) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key

    @property
    def configured(self) -> bool:
        return self._api_key is not None

    def identity(self, request: ProviderRequest) -> SegmentIdentity:
        return SegmentIdentity(
            text=request.text,
            provider=self.name.value,
            voice_id=request.voice.voice_id,
            model_id=request.profile.model_id,
            settings=tuple(sorted(request.profile.settings.model_dump().items())),
            language=request.language.value,
            wire_format=request.wire.format.value,
        )

    async def stream(
        self, request: ProviderRequest, usage: ProviderUsage
    ) -> AsyncGenerator[bytes, None]:
        if self._api_key is None:
            raise ProviderNotConfiguredError(self.name, "ELEVEN_LABS_API_KEY is not set")
        url = f"{self._base_url}/v1/text-to-speech/{request.voice.voice_id}/stream"
        with _translated_errors(self.name):
            async with self._client.stream(
                "POST",
                url,
                params={"output_format": request.wire.format.value},
                json=build_body(request),
                headers={"xi-api-key": self._api_key},
            ) as response:
                if response.status_code != 200:
                    raise classify(response.status_code, response.headers, await response.aread())
                _check_audio_content_type(response)
                _read_usage(response.headers, usage)
                async for chunk in _aligned(response.aiter_bytes(), request.wire.bytes_per_sample):
                    yield chunk

    async def subscription(self) -> dict[str, Any]:
        """GET /v1/user/subscription: the plan and its character quota.

        Warm-ups call it to check the key and to open a fresh pooled connection before the
        day's traffic; health shows the quota.
        """
        if self._api_key is None:
            raise ProviderNotConfiguredError(self.name, "ELEVEN_LABS_API_KEY is not set")
        with _translated_errors(self.name):
            response = await self._client.get(
                f"{self._base_url}/v1/user/subscription", headers={"xi-api-key": self._api_key}
            )
        if response.status_code != 200:
            raise classify(response.status_code, response.headers, response.content)
        try:
            found = response.json()
        except ValueError as exc:
            raise UpstreamProtocolError(self.name, "subscription answer is not JSON") from exc
        if not isinstance(found, dict):
            raise UpstreamProtocolError(self.name, "subscription answer is not an object")
        return found


@contextmanager
def _translated_errors(provider: Provider) -> Iterator[None]:
    """httpx's failures as our error types: nothing above the provider sees an httpx error."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
        # A host that cannot be reached fails every voice alike: account-wide.
        raise UpstreamUnreachableError(provider, f"ElevenLabs unreachable: {exc!r}") from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeoutError(provider, f"ElevenLabs timed out: {exc!r}") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise UpstreamProtocolError(provider, f"ElevenLabs stream broke: {exc!r}") from exc
    except httpx.HTTPError as exc:
        raise UpstreamProtocolError(provider, f"ElevenLabs request failed: {exc!r}") from exc


def _check_audio_content_type(response: httpx.Response) -> None:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    # An error body must never be delivered as audio, whatever the status said.
    if content_type.startswith(("application/json", "text/")):
        raise UpstreamProtocolError(
            Provider.ELEVENLABS, f"ElevenLabs sent {content_type} instead of audio", status=200
        )


def _read_usage(headers: httpx.Headers, usage: ProviderUsage) -> None:
    usage.request_id = headers.get("request-id")
    # Real responses carry character-cost; the API reference names x-character-count.
    billed = _int_header(headers, "character-cost")
    if billed is None:
        billed = _int_header(headers, "x-character-count")
    usage.characters_billed = billed or 0
    usage.concurrent_requests = _int_header(headers, "current-concurrent-requests")
    usage.max_concurrent_requests = _int_header(headers, "maximum-concurrent-requests")


async def _aligned(chunks: AsyncIterator[bytes], sample_width: int) -> AsyncIterator[bytes]:
    """Chunks cut at whole samples: a 16-bit sample split across two reads stays whole."""
    carry = b""
    async for chunk in chunks:
        data = carry + chunk if carry else chunk
        cut = len(data) - len(data) % sample_width
        carry = data[cut:]
        if cut:
            yield data[:cut]
    if carry:
        # Half a sample is inaudible; dropping it keeps the audio we already paid for.
        logger.warning("ElevenLabs sent a trailing partial sample; dropped %d byte(s)", len(carry))
