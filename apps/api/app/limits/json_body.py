"""How deep a JSON text nests, found without parsing it (DESIGN §8: a JSON depth limit).

A parser recurses once per level: a body or message nested deep enough exhausts the
recursion (FastAPI answers that with a bare 400) and costs memory on the way. The HTTP body
limit and the WebSocket session refuse such JSON before any parser sees it.
"""

import re

_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_STRUCTURE = frozenset(b'[]{}"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_QUOTE, _OPENERS = ord('"'), frozenset(b"[{")
DEFAULT_MAX_DEPTH = 32


def deeper_than(body: bytes, limit: int) -> bool:
    """Whether the JSON text `body` nests arrays and objects more than `limit` deep.

    Strings may hold any bracket, so escapes are dropped first (an escaped quote does not end
    a string), then everything but brackets and quotes; what is left is short and walked.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # not enough brackets to nest that deep: the common case, no scan
    depth = 0
    in_string = False
    for byte in _ESCAPED.sub(b"", body).translate(None, _NOT_STRUCTURE):
        if byte == _QUOTE:
            in_string = not in_string
        elif in_string:
            continue
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
