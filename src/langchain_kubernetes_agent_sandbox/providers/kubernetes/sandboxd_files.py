"""Reads and existence checks on sandboxd's REST file API, where the client's calls say too little.

`GET /v1/files/{path}` answers a directory with its JSON listing, and the client's `read` returns those bytes as if
they were the file's; `HEAD` answers 500 for a path below a file. So reads and checks are made here, with the
status and `Content-Type` in view: a listing is a directory, and an answer the file API cannot give (500, or 403
for a symlink that leaves its root) is left to the shell, which says exactly what the path is. Writes stay the
client's (`PUT`, atomic, parents made). Everything the pod sends is bounded: a body is read only up to the limit.
"""

from __future__ import annotations

import urllib.parse

import httpx

from ...errors import IsDirectoryError, NotFoundError, TooLargeError

LISTING_TYPE = "application/json"
"""The Content-Type of a directory's listing; a file is always `application/octet-stream`."""


class ShellNeeded(Exception):
    """The file API cannot answer for this path; the shell can."""


def _url(base_url: str, rel: str) -> str:
    # one segment, as the client sends it: `/` inside the name is %2F
    return f"{base_url.rstrip('/')}/v1/files/{urllib.parse.quote(rel.lstrip('/'), safe='')}"


async def read(client: httpx.AsyncClient, base_url: str, rel: str, path: str, max_bytes: int) -> bytes:
    async with client.stream("GET", _url(base_url, rel)) as response:
        if response.status_code == 404:
            raise NotFoundError(f"No such file: {path}. Check the path with list_files.")
        if response.status_code != 200:
            raise ShellNeeded(response.status_code)
        if response.headers.get("content-type", "").startswith(LISTING_TYPE):
            raise IsDirectoryError(f"{path} is a directory: read needs a file path inside it.")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise TooLargeError(
                f"{path} is larger than the limit of {max_bytes} bytes: read it in parts with `head -c`."
            )
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > max_bytes:
                raise TooLargeError(
                    f"{path} is larger than the limit of {max_bytes} bytes: read it in parts with `head -c`."
                )
        return bytes(data)


async def exists(client: httpx.AsyncClient, base_url: str, rel: str) -> bool:
    response = await client.head(_url(base_url, rel))
    if response.status_code in (200, 404):
        return response.status_code == 200
    raise ShellNeeded(response.status_code)
