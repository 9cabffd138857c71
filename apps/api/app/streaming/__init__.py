"""Streaming surfaces: chunked HTTP bodies and telephony WebSocket sessions."""
