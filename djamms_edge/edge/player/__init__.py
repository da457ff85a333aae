"""Playback: the player boundary (libmpv behind one module, a fake beside it) and the engine driving it."""
