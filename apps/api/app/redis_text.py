"""Redis replies as text: the service's clients return bytes (no decode_responses)."""


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
