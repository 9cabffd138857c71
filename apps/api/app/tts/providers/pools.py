"""Upstream connections kept in a few small pools rather than one large one.

httpcore's pool walks every connection it holds each time a request starts and each time
one ends. For each idle connection the walk asks the socket whether the server has closed it
(two system calls), and then counts every connection again: the cost of one request grows
with the square of the connections held. At 50 concurrent ElevenLabs streams that walk cost
the event loop more than the requests did, and 700 WebSocket sessions fell behind. Requests
are dealt round-robin over a few transports, each with its share of the connections: as many
connections stay alive (no new TLS handshakes), and each walk is over a fraction of them.
"""

import itertools

import httpx

# Four pools: at 50 concurrent streams each holds about a dozen connections.
POOLS = 4


class PooledTransport(httpx.AsyncBaseTransport):
    """Hands each request to the next of several transports in turn."""

    def __init__(self, transports: list[httpx.AsyncBaseTransport]) -> None:
        if not transports:
            raise ValueError("at least one transport is needed")
        self._transports = transports
        self._turns = itertools.cycle(transports)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._turns).handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


def pooled_transport(max_connections: int, pools: int = POOLS) -> PooledTransport:
    """`max_connections` in all, kept alive, split over `pools` pools (fewer if too few)."""
    count = max(1, min(pools, max_connections))
    each, extra = divmod(max_connections, count)
    return PooledTransport(
        [
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size)
            )
            for size in [each + 1] * extra + [each] * (count - extra)
        ]
    )
