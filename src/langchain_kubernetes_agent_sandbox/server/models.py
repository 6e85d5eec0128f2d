"""What the tools return: pydantic models (the output schemas) that also render as text for clients that
show only text content."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SerializerFunctionWrapHandler, model_serializer

from ..engine.jobs import JOBS_DIR
from ..engine.results import CellResult, Figure, JobResult
from ..output import OutputLimit
from ..sessions import Session, suspension
from .output_caps import recapped
from .printable import printable_name, printable_output


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


def _lean(schema: dict[str, Any]) -> None:
    """The smallest schema that says the same: no titles, and a field that is omitted when empty (None) is
    declared as its own type, not as "that type or null". Clients validate every result against it (the `mcp`
    client checks the schema itself on each call too), so each property costs time on every call."""
    schema.pop("title", None)
    for field_schema in schema.get("properties", {}).values():
        field_schema.pop("title", None)
        choices = field_schema.get("anyOf")
        if field_schema.get("default", ...) is None and isinstance(choices, list):
            kept = [choice for choice in choices if choice != {"type": "null"}]
            if len(kept) == 1:
                del field_schema["anyOf"], field_schema["default"]
                field_schema.update(kept[0])


class Rendered(BaseModel):
    """An output model that can also say itself as text. A field whose default is None is left out of the
    structured content while it is None (and declared without null), so rarely set fields cost nothing when
    unset; a required field that may be None stays, as null."""

    model_config = ConfigDict(json_schema_extra=_lean)

    def render(self) -> str:
        raise NotImplementedError

    _moved: int = PrivateAttr(0)

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        fields = type(self).model_fields
        return {
            name: value
            for name, value in data.items()
            if value is not None or name not in fields or fields[name].is_required() or fields[name].default is not None
        }

    def structured(self) -> dict[str, Any]:
        """The structured content: the fields that are set."""
        return self.model_dump(mode="json")

    @property
    def moved_bytes(self) -> int:
        """Bytes of file content or output the call moved, for the metrics and the audit log."""
        return self._moved

    def moving(self, size: int) -> Self:
        """This result, noting that its call moved `size` bytes."""
        self._moved = size
        return self


JobState = Literal["running", "exited", "timed_out", "cancelled", "lost"]


class CommandOutput(Rendered):
    """The outcome of one command: stdout and stderr apart, the exit code, and how it ended."""

    session_id: str
    stdout: str
    stderr: str
    exit_code: int = Field(description="124 when the command was killed at its timeout.")
    state: JobState = Field(
        description="running (the output is what it wrote so far), exited, timed_out, cancelled, or lost."
    )
    duration_seconds: float = Field(description="How long the call took; for a running job, how long it has run.")
    job_id: str = Field(
        description=f"The job running this command: follow it with job_status, job_wait, job_cancel. Its whole "
        f"stdout and stderr are the files {JOBS_DIR}/<job_id>/stdout and stderr."
    )
    cursor: str | None = Field(default=None, description="While running: pass to job_status for later output only.")
    dropped_bytes: int | None = Field(
        default=None, description="Set when the output cap cut it: bytes dropped from the middle."
    )
    _details: OutputDetails = PrivateAttr()
    """What the text rendering says beyond the structured fields."""

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def moved_bytes(self) -> int:
        return self._details.stdout_bytes + self._details.stderr_bytes

    @property
    def timed_out(self) -> bool:
        return self.state == "timed_out"

    @classmethod
    def of_job(
        cls, session: Session, job: JobResult, timeout: float, limit: OutputLimit | None = None, **more: Any
    ) -> Self:
        """`timeout` is the limit to report when the job's folder does not record its own; `limit` a tighter
        output cap than the sandbox's, for this call; `more` the fields a subclass adds."""
        result = job.result if limit is None else recapped(job.result, limit)
        running_for = time.time() - job.started_at if job.running and job.started_at else None
        output = cls(
            session_id=session.id,
            stdout=result.stdout,
            stderr=result.stderr,
            exit_code=result.exit_code,
            state="timed_out" if result.timed_out and job.state == "exited" else job.state,
            duration_seconds=round(running_for if running_for is not None else result.duration, 3),
            job_id=job.job_id,
            cursor=job.cursor if job.running else None,
            dropped_bytes=result.dropped_bytes or None,
            **more,
        )
        output._details = OutputDetails(
            stdout_bytes=result.stdout_bytes,
            stderr_bytes=result.stderr_bytes,
            timeout_seconds=job.limit or timeout,
            stdout_path=job.stdout_path,
            stderr_path=job.stderr_path,
        )
        return output

    def render(self) -> str:
        details = self._details
        parts = []
        if self.stdout:
            parts.append(printable_output(self.stdout.rstrip("\n")))
        if self.stderr.strip():
            parts.append("[stderr]\n" + printable_output(self.stderr.strip("\n")))
        if not parts:
            parts.append("(no output so far)" if self.running else "(no output)")
        if self.running:
            parts.append(
                f"[still running as job {self.job_id} after {self.duration_seconds:g} s; the output above is what "
                f"it wrote so far. Follow it with job_status(job_id='{self.job_id}', cursor='{self.cursor}') for "
                f"later output, job_wait to wait for it, job_cancel to stop it; it is killed after "
                f"{details.timeout_seconds:g} s]"
            )
        elif self.state == "cancelled":
            parts.append(f"[cancelled; exit code {self.exit_code}]")
        elif self.state == "lost":
            parts.append(
                "[lost: the job's process is gone without recording an exit status (the sandbox was restarted "
                "or the process was killed from outside)]"
            )
        else:
            parts.append(f"[exit code {self.exit_code}]")
        if self.timed_out:
            parts.append(
                f"[timed out: killed after {details.timeout_seconds:g} s; the output above is what it wrote until then]"
            )
        if self.dropped_bytes:
            parts.append(
                f"[output truncated: {self.dropped_bytes} of {details.stdout_bytes + details.stderr_bytes} bytes "
                "dropped "
                + (
                    f"from the middle; the whole output is in {details.stdout_path} and {details.stderr_path}: read "
                    "them with download_file, or in parts with execute('tail -c +N FILE | head -c M')]"
                    if details.stdout_path
                    else "from the middle; redirect to a file and read it in parts to see everything]"
                )
            )
        return "\n".join(parts)


@dataclass(frozen=True)
class OutputDetails:
    """What a command's text says that its structured content leaves to the files and the text."""

    stdout_bytes: int
    stderr_bytes: int
    timeout_seconds: float
    stdout_path: str | None
    stderr_path: str | None


class UploadedFile(Rendered):
    session_id: str
    path: str = Field(description="The absolute path written.")
    size: int = Field(description="The file's size in bytes.")
    sha256: str | None = Field(default=None, description="The sha256 of what was written, once it is written.")
    next_offset: int | None = Field(
        default=None, description="Set while a file sent in pieces is incomplete: where the next piece starts."
    )

    def render(self) -> str:
        if self.next_offset is not None:
            return (
                f"Received bytes up to {self.next_offset} of {self.size} for {printable_name(self.path)}; send the "
                f"piece at offset={self.next_offset} next (the file is written when the piece ending it arrives)."
            )
        return f"Wrote {self.size} bytes to {printable_name(self.path)} (sha256 {self.sha256})."


class DownloadedFile(Rendered):
    session_id: str
    path: str
    size: int = Field(description="The whole file's size in bytes.")
    sha256: str = Field(description="The whole file's sha256.")
    encoding: Literal["utf-8", "base64"]
    mime_type: str
    content: str
    offset: int | None = Field(default=None, description="Where content starts in the file, when not at 0.")
    next_offset: int | None = Field(
        default=None, description="Set when the file goes on past content: the offset to ask for next."
    )

    def render(self) -> str:
        header = f"{printable_name(self.path)}: {self.size} bytes, {self.mime_type}, sha256 {self.sha256}"
        if self.mime_type.startswith("image/") and self.next_offset is None and not self.offset:
            return header + " (the image follows)"
        if self.next_offset is not None or self.offset:
            end = self.next_offset if self.next_offset is not None else self.size
            header += f"; bytes {self.offset or 0} to {end}"
            if self.next_offset is not None:
                header += f" (call download_file again with offset={self.next_offset} for the rest)"
        content = self.content if self.encoding == "base64" else printable_output(self.content)  # nothing to escape
        return f"{header}, {self.encoding}:\n{content}"


class FileItem(BaseModel):
    name: str
    path: str
    kind: Literal["file", "directory", "symlink", "other"]
    size: int
    modified_at: str | None


class FileListing(Rendered):
    session_id: str
    path: str
    entries: list[FileItem]
    total: int = Field(description="Entries in the directory, including any left out by max_entries.")
    truncated: bool = Field(description="Whether some entries are left out, by max_entries or by incomplete.")
    incomplete: bool = Field(
        default=False,
        description="The directory holds more entries than one listing reads (10,000): total counts only those "
        "read, an arbitrary subset. List it with execute (find, ls | head) to see the rest.",
    )

    def render(self) -> str:
        header = f"{printable_name(self.path)}: {'more than ' if self.incomplete else ''}{self.total} entries"
        if len(self.entries) < self.total or self.incomplete:
            header += f", {len(self.entries)} shown"
        if self.incomplete:
            header += f" (listing stops at {self.total}: use execute with find or ls to see the rest)"
        lines = [header]
        for entry in self.entries:
            suffix = "/" if entry.kind == "directory" else ("@" if entry.kind == "symlink" else "")
            lines.append(f"{entry.size:>12}  {entry.modified_at}  {printable_name(entry.name)}{suffix}")
        return "\n".join(lines)


class SessionDescription(Rendered):
    session_id: str
    default: bool = Field(description="Whether this is the session used by calls that give no session_id.")
    provider: str
    created_at: str | None
    expires_at: str | None = Field(description="When the session ends unless it is used again (UTC).")
    ends_at: str | None = Field(description="When the session ends however busy it is (its maximum lifetime, UTC).")
    idle_timeout_seconds: float
    network: bool
    reachable: list[str] = Field(
        default_factory=list,
        description="Where the sandbox may connect through the egress proxy (`name:ports` rules); empty without "
        "network. Names resolving to private addresses stay refused unless the operator allowed them.",
    )
    labels: dict[str, str]
    working_directory: str
    python_kernel: str | None = Field(
        default=None,
        description="How execute_python runs here: a kernel kept for the session (running, or started by the next "
        "call), whose variables persist between calls, or one process per call where the sandbox keeps no "
        "background processes.",
    )
    background_processes: bool | None = Field(
        default=None,
        description="Whether processes a call leaves running outlive it here (needed for jobs and the kernel).",
    )
    state: Literal["running", "suspended"] = Field(
        default="running",
        description="suspended: its processes were stopped and its files kept (idle, or suspend_session); the next "
        f"call on it resumes it. {suspension.RESUME_NOTE}",
    )
    suspends_when_idle: bool = Field(
        default=False,
        description="Whether its idle timeout suspends it (files kept) rather than ending it; its maximum lifetime "
        "ends it either way.",
    )

    @classmethod
    def of(cls, session: Session, working_directory: str) -> SessionDescription:
        return cls(
            session_id=session.id,
            default=session.is_default,
            provider=session.sandbox.info.provider,
            created_at=_iso(session.created_at),
            expires_at=_iso(session.expires_at),
            ends_at=_iso(session.ends_at),
            idle_timeout_seconds=session.idle_timeout,
            network=session.network,
            reachable=list(session.sandbox.info.reachable),
            labels=session.labels,
            working_directory=working_directory,
            state="suspended" if session.suspended else "running",
            suspends_when_idle=session.suspends,
        )

    def _network_text(self) -> str:
        if not self.network:
            return "off"
        return f"through the egress proxy to {', '.join(self.reachable)}" if self.reachable else "on"

    def render(self) -> str:
        labels = ", ".join(f"{key}={value}" for key, value in self.labels.items()) or "none"
        if self.state == "suspended":
            idle = "suspended (the next call resumes it)"
        elif self.suspends_when_idle:
            idle = f"suspends {self.expires_at} unless used"
        else:
            idle = f"expires {self.expires_at} unless used"
        return (
            f"session {self.session_id}{' (default)' if self.default else ''} on {self.provider}: "
            f"working directory {self.working_directory}, network {self._network_text()}, "
            f"idle timeout {self.idle_timeout_seconds:g} s, {idle}, "
            f"ends by {self.ends_at}, labels {labels}"
            + (f"; Python: {self.python_kernel}" if self.python_kernel else "")
        )


class ForkedSession(SessionDescription):
    forked_from: str = Field(description="The session whose files the fork started with.")

    def render(self) -> str:
        return f"Forked session {self.forked_from} into a new {super().render()}"


class SessionList(Rendered):
    sessions: list[SessionDescription]

    def render(self) -> str:
        if not self.sessions:
            return "No open sessions; a call without session_id will create your default session."
        return "\n".join(session.render() for session in self.sessions)


class SuspendedSession(Rendered):
    session_id: str
    state: Literal["suspended"] = "suspended"

    def render(self) -> str:
        return f"Suspended session {self.session_id}; the next call on it resumes it. {suspension.RESUME_NOTE}"


class ClosedSession(Rendered):
    session_id: str
    closed: bool

    def render(self) -> str:
        return f"Closed session {self.session_id}; its sandbox and files are gone."


@dataclass(frozen=True)
class CellDetails:
    """What a cell's text says beyond its structured fields."""

    figures: list[Figure]
    figures_made: int
    figures_inline: int
    kernel_note: str | None
    state_survived: bool | None


class PythonOutput(CommandOutput):
    """A Python cell's outcome: its output, the value of a trailing expression, figures, and the kernel's fate."""

    value: str | None = Field(default=None, description="repr of the cell's trailing expression (bounded).")
    error: str | None = Field(default=None, description="The exception the cell raised, if any.")
    figures: list[str] | None = Field(
        default=None, description="Paths of the figures the cell left open, saved as PNG at full resolution."
    )
    kernel: str = Field(
        description="kept (variables from earlier calls are there), started, restarted (the previous kernel "
        "ended), reset, or once (a fresh process, nothing kept)."
    )
    _cell: CellDetails = PrivateAttr()

    @classmethod
    def of_cell(
        cls, session: Session, cell: CellResult, timeout: float, inline: int = 0, limit: OutputLimit | None = None
    ) -> PythonOutput:
        output = cls.of_job(
            session,
            cell.job,
            timeout,
            limit,
            value=cell.value,
            error=cell.error,
            figures=[figure.path for figure in cell.figures] or None,
            kernel=cell.kernel,
        )
        output._cell = CellDetails(
            figures=list(cell.figures),
            figures_made=cell.figures_made,
            figures_inline=inline,
            kernel_note=cell.kernel_note,
            state_survived=cell.state_survived,
        )
        return output

    def render(self) -> str:
        text = super().render()
        cell = self._cell
        extra = []
        if self.value is not None:
            extra.append(f"[value] {printable_output(self.value)}")
        if cell.figures:
            listed = ", ".join(
                f"{printable_name(figure.path)} ({figure.width}x{figure.height})" for figure in cell.figures
            )
            shown = f"; {cell.figures_inline} shown below" if cell.figures_inline else ""
            extra.append(f"[figures: {listed}{shown}]")
        if cell.figures_made > len(cell.figures):
            extra.append(f"[{cell.figures_made - len(cell.figures)} more figures were closed without being saved]")
        if self.kernel == "restarted":
            extra.append(
                f"[the Python kernel was restarted: {cell.kernel_note or 'the previous one ended'}; variables from "
                "earlier calls are gone]"
            )
        elif self.kernel == "reset":
            extra.append("[a fresh Python kernel: earlier variables were discarded as asked]")
        if cell.state_survived is True:
            extra.append("[the cell was interrupted; the kernel and its variables survived]")
        elif cell.state_survived is False:
            extra.append("[the cell did not stop when interrupted, so the kernel was killed; its variables are gone]")
        return "\n".join([text, *extra])
