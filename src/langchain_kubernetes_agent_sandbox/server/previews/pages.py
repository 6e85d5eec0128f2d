"""The pages a preview answers with itself, instead of the sandbox's server: each says what happened and what to
do, in HTML for a browser (its title alone reads well to curl or a model too)."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse


def page(status: int, title: str, explanation: str, *, headers: dict[str, str] | None = None) -> HTMLResponse:
    body = (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>'
        f"{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>\n"
        f"<p>{html.escape(explanation)}</p></body></html>\n"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def nothing_listens(port: int, session_id: str, detail: str) -> HTMLResponse:
    return page(
        502,
        f"502: nothing listens on port {port} in the sandbox",
        f"The preview of port {port} of session {session_id} could not reach a server there ({detail}). Start "
        f"your server inside the sandbox listening on port {port} (on 127.0.0.1 or 0.0.0.0), for instance with "
        "execute and background=true, then reload this page.",
    )


def bad_answer(port: int, detail: str) -> HTMLResponse:
    return page(
        502,
        f"502: the server on port {port} gave no valid HTTP answer",
        f"The server listening on port {port} in the sandbox closed the connection or answered something that "
        f"is not HTTP/1.1 ({detail}). Check that it serves plain HTTP (not TLS) on that port.",
    )


def too_large(port: int, size: int, limit: int) -> HTMLResponse:
    return page(
        502,
        f"502: the response from port {port} is too large",
        f"The server on port {port} announced a body of {size} bytes; a preview passes at most {limit} bytes per "
        "response (setting preview_max_bytes). Serve it in smaller parts, or fetch it with download_file.",
    )


def too_slow(port: int, seconds: float) -> HTMLResponse:
    return page(
        504,
        f"504: the server on port {port} did not answer in time",
        f"The server on port {port} in the sandbox sent no answer within {seconds:g} s (setting "
        "preview_max_seconds). Check that it is not stuck, then reload this page.",
    )


def not_found() -> HTMLResponse:
    return page(
        404,
        "404: no such preview",
        "No preview is served here for you: it was removed with unexpose_port, its session ended, the server "
        "restarted, or it belongs to someone else. Call expose_port again for a new URL.",
    )


def unauthenticated() -> HTMLResponse:
    return page(
        401,
        "401: a preview needs your bearer token",
        "Send the same bearer token you use for the MCP endpoint, in an Authorization: Bearer header. In a "
        "browser, open the preview's browser_url from expose_port instead: it lets that browser in.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def link_spent() -> HTMLResponse:
    return page(
        404,
        "404: this preview link was used already or has expired",
        "A browser link opens its preview once, within minutes of expose_port, and only while the preview lasts. "
        "Call expose_port again (for the same port) for a new link.",
    )


def busy(limit: int) -> HTMLResponse:
    return page(
        503,
        "503: too many WebSockets open",
        f"This server relays at most {limit} preview WebSockets at once: close some, then retry.",
    )
