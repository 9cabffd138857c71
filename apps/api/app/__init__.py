"""Seiketsu Voice: the text-to-speech gateway."""
