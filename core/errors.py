"""Errors a user can act on.

Every error that is the user's to fix (a config field, a data file line, a plugin) is a
``TuneloopError``: the CLI prints its one-line message and exits with code 2. Anything else is a bug
and keeps its traceback. ``TUNELOOP_DEBUG=1`` shows the traceback for both.
"""

from __future__ import annotations


def one_line_text(text: str) -> str:
    """Escape line breaks and other control characters: a message quoting bad data (a field name
    with a newline in it, say) must still print as one line."""
    return "".join(char if char.isprintable() or char == " " else repr(char)[1:-1]
                   for char in text)


class TuneloopError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""

    exit_code = 2


class ConfigError(TuneloopError):
    """A config file that does not validate. ``errors`` holds every problem found, each with its path."""

    def __init__(self, path: str, errors: list[str]):
        self.path = path
        self.errors = errors
        if len(errors) == 1:
            message = f"{path}: {errors[0]}"
        else:
            message = f"{path}: {len(errors)} problems: " + "; ".join(errors)
        super().__init__(message)


class DataError(TuneloopError):
    """Bad input data: names the file and, where there is one, the line."""

    def __init__(self, source: str, message: str, line: int | None = None):
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {one_line_text(message)}")


class PluginError(TuneloopError):
    """A plugin that failed to load, raised inside a hook, or broke a component's interface."""

    def __init__(self, plugin: str, message: str, hook: str | None = None):
        self.plugin = plugin
        self.hook = hook
        where = f'plugin "{plugin}"' + (f" in hook {hook}" if hook else "")
        super().__init__(f"{where}: {message}")


class UnknownComponentError(TuneloopError):
    """A component name that no plugin registered; lists what is available and the closest match."""

    def __init__(self, kind: str, name: str, available: list[str]):
        import difflib

        self.kind = kind
        self.name = name
        self.available = available
        close = difflib.get_close_matches(name, available, n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        listing = ", ".join(sorted(available)) or "none"
        super().__init__(f'unknown {kind} "{name}"{hint}; available: {listing}')


class DuplicateComponentError(TuneloopError):
    """Two plugins registered a component of the same kind under the same name."""

    def __init__(self, kind: str, name: str, first: str, second: str):
        super().__init__(
            f'{kind} "{name}" is registered by both plugin "{first}" and plugin "{second}"'
        )


class AuthError(TuneloopError):
    """A login or permission failure in the review app or the reviewers CLI."""
