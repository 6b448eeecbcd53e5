"""Built-in tuneloop plugins, registered exactly like third-party ones (see tuneloop.plugins.DEFAULT_PLUGINS)."""
