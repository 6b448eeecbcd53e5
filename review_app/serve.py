"""The review app as an ASGI application: Streamlit's ``st.App`` plus two small HTTP routes that
set and clear the session cookie. ``tuneloop review`` runs ``streamlit run serve.py``; Streamlit
finds ``app`` below and serves it with uvicorn.

Why routes of our own: a Streamlit script talks to the browser over a websocket, after the HTTP
response, so it cannot send ``Set-Cookie``; a cookie written by page JavaScript cannot be
HttpOnly, so any script on the page could read the session token. ``st.App(routes=...)``
(Streamlit >= 1.53, Starlette) is Streamlit's supported way to serve extra HTTP routes next to
the app, on the same origin, so the cookie set here is the one the app's websocket sends back
(``st.context.cookies``). Streamlit's own auth cookie (``st.login``) only carries an OpenID
Connect identity, not a password login.

- ``POST /_tuneloop/session`` with a one-time grant (``tuneloop.auth.issue_grant``) in the body
  answers ``Set-Cookie: tuneloop_session=<token>; HttpOnly; SameSite=Strict; Path=/`` (``Secure``
  behind HTTPS), valid until the session's absolute end.
- ``POST /_tuneloop/logout`` ends the cookie's session and clears the cookie.

Both need the header ``X-Tuneloop: 1``: a cross-site page cannot send it without a CORS
preflight this server never approves.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tuneloop import auth
from tuneloop.review_app.context import settings
from tuneloop.store import Store

HERE = Path(__file__).resolve().parent
SESSION_PATH = "/_tuneloop/session"
LOGOUT_PATH = "/_tuneloop/logout"
HEADER = "x-tuneloop"


def _database() -> Store | None:
    path, _ = settings()
    return Store(path, migrate=False) if path is not None and path.is_file() else None


def _secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def _refused(why: str, status: int = 403) -> Response:
    return PlainTextResponse(why, status_code=status, headers={"Cache-Control": "no-store"})


async def set_session_cookie(request: Request) -> Response:
    if request.headers.get(HEADER) != "1":
        return _refused("missing X-Tuneloop header")
    grant = (await request.body())[:200].decode("ascii", "replace").strip()

    def redeem() -> tuple[str, int] | None:
        store = _database()
        if store is None:
            return None
        with store:
            return auth.redeem_grant(store, grant)

    issued = await run_in_threadpool(redeem)
    if issued is None:
        return _refused("unknown, used or expired grant")
    token, max_age = issued
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.set_cookie(auth.COOKIE_NAME, token, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=_secure(request))
    return response


async def clear_session_cookie(request: Request) -> Response:
    if request.headers.get(HEADER) != "1":
        return _refused("missing X-Tuneloop header")
    token = request.cookies.get(auth.COOKIE_NAME)

    def end() -> None:
        store = _database()
        if store is None or not token:
            return
        with store:
            auth.logout(store, auth.resume_session(store, token))

    await run_in_threadpool(end)
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.delete_cookie(auth.COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=_secure(request))
    return response


app = st.App(HERE / "app.py", routes=[
    Route(SESSION_PATH, set_session_cookie, methods=["POST"]),
    Route(LOGOUT_PATH, clear_session_cookie, methods=["POST"]),
])
