"""The OpenAPI document shows every field of the synthesize body with its limits and examples."""

import httpx


async def test_openapi_documents_the_synthesize_body_limits_and_example(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()

    body = spec["components"]["schemas"]["SynthesizeRequest"]
    fields = body["properties"]
    assert set(fields) == {
        "text", "persona", "voice_agent_id", "language", "output_format", "cache"
    }  # fmt: skip
    assert fields["text"]["minLength"] == 1
    assert fields["text"]["maxLength"] == 5000
    assert body["examples"][0]["text"]
    assert all(field.get("description") for field in fields.values())
    operation = spec["paths"]["/api/v1/voice/synthesize"]["post"]
    responses = operation["responses"]
    assert {"audio/mpeg", "audio/basic", "audio/wav", "application/json"} <= set(
        responses["200"]["content"]
    )
    for status in ("413", "415", "422", "503"):
        assert status in responses


async def test_the_interactive_docs_are_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert "swagger" in response.text.lower()
