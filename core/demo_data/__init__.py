"""The demo project's dataset and config, copied out by ``tuneloop demo``."""
