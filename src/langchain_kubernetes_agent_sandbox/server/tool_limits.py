"""The numbers the tools work with and tell the model: their defaults here (or in the dataclass that owns them)
are the server's defaults, which `config.ServerConfig` takes, and the live values shape the tools' schemas and
descriptions (`tools.tool`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..limits import ExecutionLimits
from ..sessions import SessionPolicy, suspension

_EXECUTION = ExecutionLimits()
_POLICY = SessionPolicy()


@dataclass(frozen=True)
class ToolLimits:
    """Bounds the tools add on top of the sandbox's own limits, and those of the sandbox and the sessions that
    the tools' descriptions and argument bounds state."""

    max_transfer_bytes: int = 2 * 1024 * 1024
    """Largest piece of a file one upload_file or download_file call moves (inside one MCP message, base64 for
    binary); larger files move in pieces, by offset. 2 MiB stays within the SDK's 4 MiB HTTP request bound."""
    output_bytes: int = 256 * 1024
    """Bytes of stdout and of stderr a call keeps unless it asks for another cap (what a model reads)."""
    max_call_output_bytes: int = 2 * 1024 * 1024
    """The largest cap a call may ask for, and the one the sandboxes capture with (deepagents reads files in
    pages of up to 500 KiB through a command's output, base64 for binary)."""
    detach_after: float = 20.0
    """Seconds execute and execute_python wait before a command still running becomes a job (MCP clients often
    give up at 60 s, the Kubernetes router at 180 s)."""
    default_timeout: float = _EXECUTION.default_timeout
    max_timeout: float = _EXECUTION.max_timeout
    idle_timeout: float = _POLICY.idle_timeout
    max_idle_timeout: float = _POLICY.max_idle_timeout
    max_list_entries: int = _EXECUTION.max_list_entries
    wording: dict[str, str] = field(init=False, repr=False, compare=False)
    """The values as the descriptions say them, by name: `{detach_after}` in a tool's docstring is "20 s"."""

    def __post_init__(self) -> None:
        seconds = ("detach_after", "default_timeout", "max_timeout", "idle_timeout", "max_idle_timeout")
        said = {name: f"{getattr(self, name):g} s" for name in seconds}
        said |= {name: f"{getattr(self, name)} bytes" for name in ("max_transfer_bytes", "output_bytes")}
        said |= {
            "max_call_output_bytes": f"{self.max_call_output_bytes} bytes",
            "max_list_entries": f"{self.max_list_entries:,}",
            "resume_note": suspension.RESUME_NOTE,
        }
        object.__setattr__(self, "wording", said)
