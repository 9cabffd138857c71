"""Request and response media types: JSON bodies in, audio or JSON out."""

from fastapi import Request

from app.errors import UnsupportedMediaTypeError

JSON = "application/json"


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def wants_json(accept: str | None) -> bool:
    """Whether the client prefers JSON over audio (`Accept: application/json`)."""
    if not accept:
        return False
    json_q = audio_q = 0.0
    for item in accept.split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        q = _quality(params)
        if media == JSON:
            json_q = max(json_q, q)
        elif media.startswith("audio/") or media in ("*/*", "application/octet-stream"):
            audio_q = max(audio_q, q)
    return json_q > 0 and json_q >= audio_q


async def require_json_body(request: Request) -> None:
    """415 unless the body is declared as JSON (application/json or a +json type)."""
    content_type = _media_type(request.headers.get("content-type", ""))
    if content_type != JSON and not content_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            "Send the request body as JSON with Content-Type: application/json.",
            details={"content_type": content_type or None},
        )
