"""Browser links: a browser cannot add a bearer token to a page it opens, so over HTTP with authentication
`expose_port` also gives a one-time link that sets a cookie admitting that browser to that one preview.

The link (`/preview-open/{ticket}`) works once, within `table.TICKET_SECONDS`; the cookie holds the preview's own
random key, is scoped to the preview's path, HttpOnly and SameSite=Lax (so pages of other sites cannot send it),
and admits nothing once the preview ends. It is this server's credential, so it never reaches the sandbox.
"""

from __future__ import annotations

import hmac
import urllib.parse
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from . import pages
from .observe import record_refusal
from .table import Preview

if TYPE_CHECKING:
    from .service import Previews

OPEN_PREFIX = "/preview-open/"
COOKIE = "kas_preview_key"


def cookie_admits(scope: Scope, preview: Preview) -> bool:
    """Whether the request carries the cookie a browser link set for `preview`."""
    key = preview.browser_key.encode()
    return any(
        hmac.compare_digest(value.strip(), key)
        for name, header in scope["headers"]
        if name.lower() == b"cookie"
        for part in header.split(b";")
        for cookie, _, value in [part.partition(b"=")]
        if cookie.strip() == COOKIE.encode()
    )


def without_our_cookie(header: bytes) -> bytes | None:
    """A Cookie header's value without this server's cookie (None when nothing else is left): the app in the
    sandbox gets its own cookies only."""
    kept = [part for part in header.split(b";") if part.partition(b"=")[0].strip() != COOKIE.encode()]
    return b";".join(kept).strip() or None


class BrowserLinks:
    """The endpoint of `OPEN_PREFIX{ticket}`: spends the ticket, sets the cookie, sends the browser on to the
    preview."""

    def __init__(self, previews: Previews, *, secure: bool) -> None:
        self.previews = previews
        self.secure = secure
        """Whether the cookie is sent over HTTPS only (the server's public URL is https)."""

    async def open(self, request: Request) -> Response:
        preview = self.previews.table.redeem(request.path_params["ticket"])
        if preview is None or not await self.previews.alive(preview):
            record_refusal(self.previews.metrics, "http", None, 404)
            return pages.link_spent()
        url = f"{self.previews.base_url}{preview.path}"  # the public URL: a reverse proxy may add a path before it
        headers = {"Location": url, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        answer = Response(status_code=303, headers=headers)
        path = urllib.parse.urlsplit(url).path
        answer.set_cookie(COOKIE, preview.browser_key, path=path, httponly=True, samesite="lax", secure=self.secure)
        return answer
