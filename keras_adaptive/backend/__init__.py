"""Backend-specific fast paths. Each is chosen by dispatch and tested against the portable path."""
