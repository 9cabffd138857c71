"""Audio formats and codecs: PCM, WAV, MP3, G.711; quality measures."""
