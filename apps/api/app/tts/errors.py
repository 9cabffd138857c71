"""Synthesis failures, classified at the provider boundary so nothing above sees httpx or ctypes."""

from app.errors import AppError, ServiceUnavailableError
from app.tts.models import Provider


class ProviderError(AppError):
    """One provider could not produce a segment. The chain may try the next one.

    `account_wide` failures (bad key, no quota, upstream unreachable) would fail for every voice
    of the provider, so the chain skips the provider's other voices.
    """

    status_code = 503
    code = "provider_error"
    account_wide = False

    def __init__(self, provider: Provider, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.upstream_status = status


class ProviderNotConfiguredError(ProviderError):
    code = "provider_not_configured"
    account_wide = True


class UpstreamAuthError(ProviderError):
    code = "upstream_auth_failed"
    account_wide = True


class UpstreamQuotaExceededError(ProviderError):
    code = "upstream_quota_exceeded"
    account_wide = True


class UpstreamUnreachableError(ProviderError):
    code = "upstream_unreachable"
    account_wide = True


class UpstreamRateLimitedError(ProviderError):
    """429: too many concurrent requests or requests per second, for the whole account."""

    code = "upstream_rate_limited"
    account_wide = True

    def __init__(
        self, provider: Provider, message: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(provider, message, status=429)
        self.retry_after_s = retry_after_s


class UpstreamBusyError(ProviderError):
    """No upstream slot within the time budget, or upstream asked every process to back off."""

    code = "upstream_slots_exhausted"
    account_wide = True


class UpstreamServerError(ProviderError):
    code = "upstream_server_error"


class UpstreamTimeoutError(ProviderError):
    code = "upstream_timeout"


class UpstreamRejectedError(ProviderError):
    """Upstream refused our own request (400/404/422): a bug or a bad voice id on our side."""

    code = "upstream_rejected_request"


class UpstreamProtocolError(ProviderError):
    """Upstream answered, but not with usable audio (error body on 200, truncated stream)."""

    code = "upstream_bad_response"


class OfflineEngineError(ProviderError):
    code = "offline_engine_failed"


class SynthesisUnavailableError(ServiceUnavailableError):
    """Every provider failed for a segment: the one case the caller gets no speech."""

    code = "synthesis_unavailable"
