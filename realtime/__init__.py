"""Live path: input loops, clock and scheduler, streaming engine, MIDI/OSC outputs, preview."""
