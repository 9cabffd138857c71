"""PUT/GET/DELETE /agents/{voice_agent_id}: voice agents, stored in the state Redis."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from app.agents import Agent, AgentNotFoundError, AgentSpec
from app.api.negotiation import require_json_body
from app.api.schemas import ERROR_RESPONSES, NOT_FOUND
from app.deps import AgentsDep
from app.tts.models import AgentId

router = APIRouter(prefix="/agents", tags=["agents"])

# Annotated, not a default: FastAPI keeps AgentId's pattern and length only this way.
AgentIdPath = Annotated[AgentId, Path(description="The voice agent's id.")]


@router.put(
    "/{voice_agent_id}",
    name="put_agent",
    summary="Create or replace a voice agent",
    dependencies=[Depends(require_json_body)],
    responses={201: {"model": Agent, "description": "Created."}, **ERROR_RESPONSES},
)
async def put_agent(
    voice_agent_id: AgentIdPath, spec: AgentSpec, agents: AgentsDep, response: Response
) -> Agent:
    agent, created = await agents.put(voice_agent_id, spec)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return agent


@router.get(
    "/{voice_agent_id}",
    name="get_agent",
    summary="A voice agent",
    responses=NOT_FOUND,
)
async def get_agent(voice_agent_id: AgentIdPath, agents: AgentsDep) -> Agent:
    return await agents.require(voice_agent_id)


@router.delete(
    "/{voice_agent_id}",
    name="delete_agent",
    summary="Delete a voice agent (its cached audio stays until it expires)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def delete_agent(voice_agent_id: AgentIdPath, agents: AgentsDep) -> Response:
    if not await agents.delete(voice_agent_id):
        raise AgentNotFoundError(voice_agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
