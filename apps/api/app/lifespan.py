"""The API's lifespan: the shared services (app.services) plus what only the API has."""

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI

from app.config import Settings
from app.ops import memory
from app.ops.collector import FullCollections
from app.services import Services, open_services
from app.streaming.registry import SessionRegistry
from app.streaming.stalls import StreamWatch

# The main arena and one that the audio threads share, rather than one per thread.
MALLOC_ARENAS = 2


class State(TypedDict):
    settings: Settings
    services: Services
    sessions: SessionRegistry
    streams: StreamWatch


def make_lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[State]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        # Before open_services starts the offline engine's thread and the encoders' pool.
        memory.limit_arenas(MALLOC_ARENAS)
        trimmer = memory.trimmer()
        async with open_services(settings, watch_loop=True) as services:
            sessions = SessionRegistry(services.redis)
            sessions.start()
            streams = StreamWatch(
                services.redis, sessions.process_id, settings.streaming.stall_after_s
            )
            streams.start()
            trimmer.start()
            collections = FullCollections(
                lambda: streams.open_streams == 0,
                settings.server.full_gc_quiet_every_s,
                settings.server.full_gc_max_interval_s,
            )
            # What start-up loaded (language models, the app, schemas: ~90k objects) lives as
            # long as the process; left to the cyclic GC, each full collection walked all of
            # it, a ~30 ms stall that was the p99 of cache hits under load.
            gc.freeze()
            collections.start()
            try:
                yield State(
                    settings=settings, services=services, sessions=sessions, streams=streams
                )
            finally:
                await collections.stop()
                gc.unfreeze()
                await trimmer.stop()
                await streams.stop()
                await sessions.stop()

    return lifespan
