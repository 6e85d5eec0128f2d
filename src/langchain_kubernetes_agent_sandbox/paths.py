"""The one path convention: every door sees the same filesystem, with `/app` as the working directory."""

from __future__ import annotations

import posixpath

from .errors import InvalidPathError

WORKDIR = "/app"
"""The sandbox's working directory; relative paths resolve here (the upstream runtime's base directory)."""

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
"""The longest file name Linux filesystems hold (NAME_MAX); a longer one is refused before any backend sees it."""


def resolve(path: str, cwd: str = WORKDIR) -> str:
    """Return the normalised absolute path that `path` names inside the sandbox.

    Relative paths resolve against `cwd`. `..` may move up but never above `/`: a path that tries is refused
    rather than silently clamped, because clamping would write somewhere the caller did not mean.
    """
    if not isinstance(path, str) or path == "":
        raise InvalidPathError("The path is empty: give a file path such as 'data.csv' or '/app/data.csv'.")
    if "\x00" in path:
        raise InvalidPathError(f"The path {path!r} contains a NUL byte: remove it.")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise InvalidPathError(f"The path is longer than {MAX_PATH_BYTES} bytes: use a shorter one.")
    joined = path if path.startswith("/") else f"{cwd.rstrip('/')}/{path}"
    depth = 0
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            raise InvalidPathError(
                f"The path {path!r} climbs above '/' with '..': name the file by its absolute path instead."
            )
    resolved = posixpath.normpath("/" + joined.lstrip("/"))
    for part in resolved.split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise InvalidPathError(
                f"The name {part[:40]!r}... in the path is longer than {MAX_NAME_BYTES} bytes, "
                "the most a file name may have: use a shorter name."
            )
    return resolved


def is_within(path: str, directory: str) -> bool:
    """Whether the normalised absolute `path` is `directory` or lies below it."""
    directory = directory.rstrip("/") or "/"
    return path == directory or path.startswith(directory if directory == "/" else directory + "/")
