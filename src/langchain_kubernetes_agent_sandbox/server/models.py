"""What the tools return: pydantic models (the output schemas) that also render as text for clients that
show only text content."""

from __future__ import annotations

import datetime
import time
from typing import Literal

from pydantic import BaseModel, Field

from ..engine.results import CellResult, JobResult
from ..results import CommandResult
from ..sessions import Session
from .printable import printable_name, printable_output


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


class Rendered(BaseModel):
    """An output model that can also say itself as text."""

    def render(self) -> str:
        raise NotImplementedError


class CommandOutput(Rendered):
    """The outcome of one command: stdout and stderr apart, the exit code, and whether limits cut it short."""

    session_id: str
    stdout: str
    stderr: str
    exit_code: int = Field(description="124 when the command was killed at its timeout.")
    timed_out: bool
    truncated: bool = Field(description="Whether the middle of the output was dropped to respect the output cap.")
    stdout_bytes: int
    stderr_bytes: int
    dropped_bytes: int
    duration_seconds: float = Field(description="How long the call took; for a running job, how long it has run.")
    timeout_seconds: float = Field(description="The command's time limit.")
    job_id: str | None = Field(
        default=None, description="The job running this command, to follow with job_status, job_wait, job_cancel."
    )
    running: bool = Field(default=False, description="Still running: the output is what it wrote so far.")
    state: str = Field(default="exited", description="running, exited, timed_out, cancelled, or lost.")
    cursor: str | None = Field(default=None, description="Pass to job_status to get only later output.")
    stdout_path: str | None = Field(default=None, description="File in the sandbox with the whole stdout.")
    stderr_path: str | None = Field(default=None, description="File in the sandbox with the whole stderr.")

    @classmethod
    def of_job(cls, session: Session, job: JobResult, timeout: float) -> CommandOutput:
        """`timeout` is the limit to report when the job's folder does not record its own."""
        output = cls.of(session, job.result, job.limit or timeout)
        running_for = time.time() - job.started_at if job.running and job.started_at else None
        return output.model_copy(
            update={
                "duration_seconds": round(running_for, 3) if running_for is not None else output.duration_seconds,
                "job_id": job.job_id,
                "running": job.running,
                "state": job.state,
                "cursor": job.cursor,
                "stdout_path": job.stdout_path,
                "stderr_path": job.stderr_path,
            }
        )

    @classmethod
    def of(cls, session: Session, result: CommandResult, timeout: float) -> CommandOutput:
        return cls(
            session_id=session.id,
            stdout=result.stdout,
            stderr=result.stderr,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            truncated=result.truncated,
            stdout_bytes=result.stdout_bytes,
            stderr_bytes=result.stderr_bytes,
            dropped_bytes=result.dropped_bytes,
            duration_seconds=round(result.duration, 3),
            timeout_seconds=timeout,
        )

    def render(self) -> str:
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
                f"{self.timeout_seconds:g} s]"
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
                f"[timed out: killed after {self.timeout_seconds:g} s; the output above is what it wrote until then]"
            )
        if self.truncated:
            parts.append(
                f"[output truncated: {self.dropped_bytes} of {self.stdout_bytes + self.stderr_bytes} bytes dropped "
                + (
                    f"from the middle; the whole output is in {self.stdout_path} and {self.stderr_path}: read them "
                    "with download_file, or in parts with execute('tail -c +N FILE | head -c M')]"
                    if self.stdout_path
                    else "from the middle; redirect to a file and read it in parts to see everything]"
                )
            )
        return "\n".join(parts)


class UploadedFile(Rendered):
    session_id: str
    path: str = Field(description="The absolute path written.")
    size: int
    sha256: str

    def render(self) -> str:
        return f"Wrote {self.size} bytes to {printable_name(self.path)} (sha256 {self.sha256})."


class DownloadedFile(Rendered):
    session_id: str
    path: str
    size: int
    sha256: str
    encoding: Literal["utf-8", "base64"]
    mime_type: str
    content: str

    def render(self) -> str:
        header = f"{printable_name(self.path)}: {self.size} bytes, {self.mime_type}, sha256 {self.sha256}"
        if self.mime_type.startswith("image/"):
            return header + " (the image follows)"
        return f"{header}, {self.encoding}:\n{printable_output(self.content)}"


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
        )

    def _network_text(self) -> str:
        if not self.network:
            return "off"
        return f"through the egress proxy to {', '.join(self.reachable)}" if self.reachable else "on"

    def render(self) -> str:
        labels = ", ".join(f"{key}={value}" for key, value in self.labels.items()) or "none"
        return (
            f"session {self.session_id}{' (default)' if self.default else ''} on {self.provider}: "
            f"working directory {self.working_directory}, network {self._network_text()}, "
            f"idle timeout {self.idle_timeout_seconds:g} s, expires {self.expires_at} unless used, "
            f"ends by {self.ends_at}, labels {labels}"
            + (f"; Python: {self.python_kernel}" if self.python_kernel else "")
        )


class SessionList(Rendered):
    sessions: list[SessionDescription]

    def render(self) -> str:
        if not self.sessions:
            return "No open sessions; a call without session_id will create your default session."
        return "\n".join(session.render() for session in self.sessions)


class ClosedSession(Rendered):
    session_id: str
    closed: bool

    def render(self) -> str:
        return f"Closed session {self.session_id}; its sandbox and files are gone."


class FigureItem(BaseModel):
    path: str = Field(description="The figure at full resolution, saved in the sandbox.")
    inline_path: str | None = Field(description="The copy sent as an image (within the byte budget), if any.")
    width: int
    height: int
    error: str | None = None


class PythonOutput(CommandOutput):
    """A Python cell's outcome: its output, the value of a trailing expression, figures, and the kernel's fate."""

    value: str | None = Field(default=None, description="repr of the cell's trailing expression (bounded).")
    error: str | None = Field(default=None, description="The exception the cell raised, if any.")
    figures: list[FigureItem] = Field(default_factory=list)
    figures_made: int = 0
    figures_inline: int = Field(default=0, description="How many figures follow as image content.")
    kernel: str = Field(
        default="kept",
        description="kept (variables from earlier calls are there), started, restarted (the previous kernel "
        "ended: see kernel_note), reset, or once (a fresh process, nothing kept).",
    )
    kernel_note: str | None = None
    state_survived: bool | None = Field(
        default=None, description="After a timeout or cancel: whether the interrupted kernel kept its variables."
    )

    @classmethod
    def of_cell(cls, session: Session, cell: CellResult, timeout: float, inline: int = 0) -> PythonOutput:
        base = CommandOutput.of_job(session, cell.job, timeout)
        return cls(
            **base.model_dump(),
            value=cell.value,
            error=cell.error,
            figures=[
                FigureItem(
                    path=figure.path,
                    inline_path=figure.inline,
                    width=figure.width,
                    height=figure.height,
                    error=figure.error,
                )
                for figure in cell.figures
            ],
            figures_made=cell.figures_made,
            figures_inline=inline,
            kernel=cell.kernel,
            kernel_note=cell.kernel_note,
            state_survived=cell.state_survived,
        )

    def render(self) -> str:
        text = super().render()
        extra = []
        if self.value is not None:
            extra.append(f"[value] {printable_output(self.value)}")
        if self.figures:
            listed = ", ".join(
                f"{printable_name(figure.path)} ({figure.width}x{figure.height})" for figure in self.figures
            )
            shown = f"; {self.figures_inline} shown below" if self.figures_inline else ""
            extra.append(f"[figures: {listed}{shown}]")
        if self.figures_made > len(self.figures):
            extra.append(f"[{self.figures_made - len(self.figures)} more figures were closed without being saved]")
        if self.kernel == "restarted":
            extra.append(
                f"[the Python kernel was restarted: {self.kernel_note or 'the previous one ended'}; variables from "
                "earlier calls are gone]"
            )
        elif self.kernel == "reset":
            extra.append("[a fresh Python kernel: earlier variables were discarded as asked]")
        if self.state_survived is True:
            extra.append("[the cell was interrupted; the kernel and its variables survived]")
        elif self.state_survived is False:
            extra.append("[the cell did not stop when interrupted, so the kernel was killed; its variables are gone]")
        return "\n".join([text, *extra])
