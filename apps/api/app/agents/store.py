"""Agents in the state Redis: one JSON value each, and a set of every agent id."""

import time

from redis.asyncio import Redis

from app.agents.models import Agent, AgentSpec
from app.errors import NotFoundError
from app.redis_text import text

AGENT_KEY = "sv:agent:"
AGENT_IDS = "sv:agents"


class AgentNotFoundError(NotFoundError):
    code = "agent_not_found"

    def __init__(self, voice_agent_id: str) -> None:
        super().__init__(
            f"No voice agent {voice_agent_id!r}: create it with PUT /api/v1/voice/agents/"
            f"{voice_agent_id}.",
            details={"voice_agent_id": voice_agent_id},
        )


class AgentStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, voice_agent_id: str) -> Agent | None:
        value = await self._redis.get(AGENT_KEY + voice_agent_id)
        return None if value is None else Agent.model_validate_json(value)

    async def require(self, voice_agent_id: str) -> Agent:
        agent = await self.get(voice_agent_id)
        if agent is None:
            raise AgentNotFoundError(voice_agent_id)
        return agent

    async def put(self, voice_agent_id: str, spec: AgentSpec) -> tuple[Agent, bool]:
        """Create or replace the agent; True when it is new."""
        now = time.time()
        existing = await self.get(voice_agent_id)
        agent = Agent(
            **spec.model_dump(),
            voice_agent_id=voice_agent_id,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(AGENT_KEY + voice_agent_id, agent.model_dump_json())
            pipe.sadd(AGENT_IDS, voice_agent_id)
            await pipe.execute()
        return agent, existing is None

    async def delete(self, voice_agent_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(AGENT_KEY + voice_agent_id)
            pipe.srem(AGENT_IDS, voice_agent_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def active(self) -> list[Agent]:
        """Every agent marked active, by id."""
        ids = sorted(text(m) for m in await self._redis.smembers(AGENT_IDS))
        if not ids:
            return []
        values = await self._redis.mget([AGENT_KEY + i for i in ids])
        agents = [Agent.model_validate_json(v) for v in values if v is not None]
        return [a for a in agents if a.active]
