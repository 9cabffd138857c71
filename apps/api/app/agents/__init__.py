"""Voice agents: who speaks (persona, languages, voice overrides, custom phrases), in Redis."""

from app.agents.models import Agent, AgentSpec, VoiceOverride
from app.agents.store import AgentNotFoundError, AgentStore

__all__ = ["Agent", "AgentNotFoundError", "AgentSpec", "AgentStore", "VoiceOverride"]
