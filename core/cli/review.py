"""``tuneloop review`` (start the review app) and ``tuneloop reviewers`` (expert accounts).

Streamlit, argon2 and the store are imported inside the commands: this module is imported by
every ``tuneloop`` call, and ``tuneloop --help`` must stay fast.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from functools import wraps
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tuneloop.errors import AuthError, TuneloopError

DEFAULT_CONFIG = "tuneloop.yaml"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def database_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--config``/``--db`` on a command, resolved into a ``database: Path`` argument."""

    @click.option("--config", default=DEFAULT_CONFIG, show_default=True,
                  type=click.Path(dir_okay=False), help="the project config naming the database")
    @click.option("--db", type=click.Path(dir_okay=False),
                  help="the project database (instead of reading it from --config)")
    @wraps(command)
    def wrapper(*args: Any, config: str, db: str | None, **kwargs: Any) -> Any:
        return command(*args, database=resolve_database(config, db), **kwargs)

    return wrapper


def resolve_database(config: str, db: str | None) -> Path:
    """``--db`` if given, else the ``database`` of the config (relative to the config's folder)."""
    if db:
        return Path(db)
    from tuneloop.config import load_config

    if not Path(config).is_file():
        raise TuneloopError(f"{config}: file not found (pass --config PATH or --db PATH)")
    return load_config(config, check_components=False).database_path


# ---- review ------------------------------------------------------------------------------


@click.command()
@database_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0: every interface)")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535))
@click.option("--idle-hours", default=8.0, show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="log a reviewer out after this long without activity")
@click.option("--secrets", "secrets_file", type=click.Path(dir_okay=False, exists=True),
              help="a secrets.toml with an [auth] section: offer single sign-on (OpenID "
                   "Connect) next to the password form; see docs/review_app.md")
@click.option("--guidelines", type=click.Path(dir_okay=False, exists=True),
              help="a Markdown file of annotation guidelines shown beside every item "
                   "(default: the config's review.guidelines)")
def review(database: Path, host: str, port: int, idle_hours: float,
           secrets_file: str | None, guidelines: str | None) -> None:
    """Start the review app, where experts log in and rate model outputs."""
    from tuneloop.store import Store

    guidelines = guidelines or configured_guidelines(click.get_current_context().params)

    if not database.is_file():
        raise TuneloopError(f"{database}: no database yet; run a cycle first (tuneloop run)")
    if secrets_file is not None:
        check_sso_secrets(Path(secrets_file))
    from tuneloop.cli.child import port_in_use, run_forwarding_signals

    shown_host = f"[{host}]" if ":" in host else host
    if port_in_use(host, port):
        raise TuneloopError(f"port {port} on {shown_host} is already in use (another review app?):"
                            f" choose another with --port {port + 1 if port < 65535 else 8501}")
    with Store(database) as store:
        if not store.reviewers():
            click.secho("No reviewer accounts yet: add one with "
                        "`tuneloop reviewers add NAME`.", fg="yellow", err=True)
    if host not in LOOPBACK:
        click.secho("The app speaks plain HTTP: expose it beyond this machine only behind an "
                    "HTTPS proxy, or passwords cross the network in clear.", fg="yellow", err=True)
    # serve.py: the app plus the routes that set the HttpOnly session cookie (st.App)
    app = resources.files("tuneloop.review_app") / "serve.py"
    command = [sys.executable, "-m", "streamlit", "run", str(app),
               "--server.headless", "true", "--server.address", host,
               "--server.port", str(port), "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "minimal",
               *(["--secrets.files", str(Path(secrets_file).resolve())] if secrets_file else []),
               "--", "--db", str(database.resolve()), "--idle-hours", str(idle_hours),
               *(["--guidelines", str(Path(guidelines).resolve())] if guidelines else [])]
    click.echo(f"Review app for {database}: http://{shown_host}:{port}  (Ctrl+C stops it)")
    # SIGTERM/SIGINT are passed on to streamlit and waited for: stopping this stops the app
    returncode, stopped_by = run_forwarding_signals(command)
    if stopped_by is not None or returncode in (0, -2, 130, -15, 143):
        return  # stopped (Ctrl+C, kill): not an error
    raise TuneloopError(f"the review app (streamlit) exited with code {returncode}")


def configured_guidelines(params: dict[str, Any]) -> str | None:
    """``review.guidelines`` of the ``--config`` file (resolved against it), when the database
    came from a config; a configured file that is missing is an error naming the field."""
    config = params.get("config")
    if params.get("db") or not config or not Path(config).is_file():
        return None
    from tuneloop.config import load_config

    loaded = load_config(config, check_components=False)
    if loaded.review.guidelines is None:
        return None
    path = loaded.resolve(loaded.review.guidelines)
    if not path.is_file():
        raise TuneloopError(f"{config}: review.guidelines: {path} does not exist")
    return str(path)


def check_sso_secrets(path: Path) -> None:
    """Refuse a secrets file that cannot give single sign-on, before starting the server."""
    import importlib.util
    import tomllib

    try:
        auth = tomllib.loads(path.read_text(encoding="utf-8")).get("auth")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise TuneloopError(f"{path}: not a readable TOML file ({error})") from None
    if not isinstance(auth, dict):
        raise TuneloopError(f"{path}: no [auth] section (single sign-on needs one)")
    missing = [key for key in ("redirect_uri", "cookie_secret") if key not in auth]
    if missing:
        raise TuneloopError(f"{path}: [auth] needs {' and '.join(missing)}")
    if importlib.util.find_spec("authlib") is None:
        raise TuneloopError("single sign-on needs Authlib: pip install 'tuneloop[sso]'")


# ---- reviewers ---------------------------------------------------------------------------


@click.group()
def reviewers() -> None:
    """Manage the experts who may log in to the review app."""


@reviewers.command(name="add")
@click.argument("name")
@click.option("--role", type=click.Choice(["expert", "admin"]), default="expert",
              show_default=True)
@click.option("--password-stdin", is_flag=True,
              help="read the password from the first line of stdin (for scripts)")
@click.option("--email", help="the email a single sign-on identity proves (see docs/review_app.md)")
@click.option("--no-password", is_flag=True,
              help="single sign-on only: no password logs this account in (needs --email)")
@database_options
def add_reviewer(database: Path, name: str, role: str, password_stdin: bool, email: str | None,
                 no_password: bool) -> None:
    """Add a reviewer account; the password is asked twice, hidden.

    Creates the database if there is none yet, so accounts can exist before the first cycle.
    """
    from tuneloop.auth import check_email, check_name, create_reviewer
    from tuneloop.store import Store

    check_name(name)
    if email is not None:
        check_email(email)
    if no_password and email is None:
        raise AuthError("--no-password needs --email (the account logs in by single sign-on)")
    with Store(database) as store:
        if store.reviewer(name) is not None:  # say so before asking for a password
            raise AuthError(f'reviewer "{name}" already exists')
        password = None if no_password else read_password(password_stdin)
        create_reviewer(store, name, password, role, email=email)
    click.echo(f"Added {role} {name} to {database}")


def read_password(from_stdin: bool) -> str:
    """A new password: the first line of stdin, or asked twice, hidden."""
    if from_stdin:
        line = click.get_text_stream("stdin").readline()
        if not line:
            raise AuthError("--password-stdin: no password on stdin")
        return line.rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@reviewers.command(name="list")
@database_options
def list_reviewers(database: Path) -> None:
    """Reviewers with their role, number of ratings, and whether they are locked or disabled."""
    from tuneloop.auth import is_locked
    from tuneloop.store import Store

    if not database.is_file():
        click.echo(f"No reviewers yet: {database} does not exist.")
        return
    with Store(database) as store:
        rows = store.reviewers()
    now = datetime.now(timezone.utc)
    table = Table(title=f"Reviewers in {database}")
    for column, justify in (("name", "left"), ("role", "left"), ("ratings", "right"),
                            ("locked", "left"), ("disabled", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        locked = f"until {row['locked_until'][11:16]} UTC" if is_locked(row, now) else "no"
        table.add_row(Text(row["name"]), row["role"], str(row["ratings"]), locked,
                      "yes" if row["disabled"] else "no")
    Console().print(table)


@reviewers.command(name="disable")
@click.argument("name")
@database_options
def disable_reviewer(database: Path, name: str) -> None:
    """Stop a reviewer logging in; an open session is logged out at its next click."""
    _set_account(database, name, disabled=1)
    click.echo(f"Disabled {name}; their ratings are kept.")


@reviewers.command(name="enable")
@click.argument("name")
@database_options
def enable_reviewer(database: Path, name: str) -> None:
    """Let a disabled or locked-out reviewer log in again."""
    _set_account(database, name, disabled=0, failed_logins=0, locked_until=None)
    click.echo(f"Enabled {name}.")


@reviewers.command(name="reset-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="read the password from the first line of stdin (for scripts)")
@database_options
def reset_password(database: Path, name: str, password_stdin: bool) -> None:
    """Give a reviewer a new password (asked twice, hidden); also lifts a lockout."""
    from tuneloop.auth import set_password
    from tuneloop.store import Store

    _existing(database, name)
    password = read_password(password_stdin)
    with Store(database) as store:
        set_password(store, name, password)
    click.echo(f"New password set for {name}.")


@reviewers.command(name="set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(["expert", "admin"]))
@database_options
def set_role_command(database: Path, name: str, role: str) -> None:
    """Make a reviewer an expert (rates) or an admin (also dashboards, history, accounts)."""
    from tuneloop.auth import set_role
    from tuneloop.store import Store

    _existing(database, name)
    with Store(database) as store:
        set_role(store, name, role)
    click.echo(f"{name} is now an {role}.")


@reviewers.command(name="set-email")
@click.argument("name")
@click.argument("email", required=False)
@database_options
def set_email_command(database: Path, name: str, email: str | None) -> None:
    """Link a reviewer to the email their single sign-on identity proves (no EMAIL: unlink)."""
    from tuneloop.auth import set_email
    from tuneloop.store import Store

    _existing(database, name)
    with Store(database) as store:
        set_email(store, name, email)
    click.echo(f"{name}: " + (f"single sign-on as {email.strip().lower()}" if email
                              else "no single sign-on"))


def _existing(database: Path, name: str) -> None:
    """Refuse an unknown database or reviewer before asking for anything."""
    from tuneloop.store import Store

    if not database.is_file():
        raise TuneloopError(f"{database}: no database yet")
    with Store(database) as store:
        if store.reviewer(name) is None:
            raise AuthError(f'no reviewer "{name}"')


def _set_account(database: Path, name: str, **fields: Any) -> None:
    from tuneloop.store import Store

    if not database.is_file():
        raise TuneloopError(f"{database}: no database yet")
    with Store(database) as store:
        row = store.reviewer(name)
        if row is None:
            raise AuthError(f'no reviewer "{name}"')
        store.update_reviewer(row["id"], **fields)


commands = [review, reviewers]
