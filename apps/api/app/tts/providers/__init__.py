"""Speech providers behind one interface: ElevenLabs upstream and the offline eSpeak NG engine."""
