"""A stateful Python kernel per sandbox, built on shell commands and files only (see `program.py`, which runs
inside the sandbox, and `jobs.py`, whose machinery every cell uses).

A cell is a job run by the kernel: one shell command starts the kernel if none runs (detached with `setsid`,
so it outlives the call; on the local provider the sandbox's holder keeps it), hands it the cell's job folder
through the FIFO `KERNEL_DIR/in`, and waits (up to the detach bound) on the FIFO `JOB/reply`, which reaches
end-of-file when the cell is done or the kernel died; then it reports the job as `jobs.py` does. The kernel
enforces the cell's time limit itself (interrupting the cell, keeping the namespace) and writes the job's exit
status; job_status, job_wait and job_cancel work on cells as on any job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
from importlib import resources
from typing import Any

from ..errors import SandboxError
from ..output import OutputLimit
from ..sandbox import Sandbox
from . import budget
from .memo import SandboxMemo
from .results import CellResult, Figure, JobResult
from .shell_jobs import (
    PROGRAM_CHANGED_EXIT,
    PROGRAM_CHANGED_MARK,
    ProgramChanged,
    job_dir,
    limit_record,
    maybe_prune,
    new_job_id,
    put_text,
    report_limit,
    run_then_report,
)
from .shell_jobs import start as start_job

KERNEL_DIR = "/tmp/.kas/kernel"
PROGRAM = resources.files(__package__).joinpath("pykernel.py").read_text(encoding="utf-8")
_GENUINE = (
    f"printf '%s  %s\\n' {hashlib.sha256(PROGRAM.encode()).hexdigest()} {KERNEL_DIR}/program.py | "
    f"sha256sum -c --status 2>/dev/null || {{ echo {PROGRAM_CHANGED_MARK}; exit {PROGRAM_CHANGED_EXIT}; }}"
)
"""Shell run before a kernel starts: the sandbox's copy of the program must be the package's (a copy replaced
from inside the sandbox would otherwise become every later kernel), else the server installs it again."""

_installed: SandboxMemo[bool] = SandboxMemo()
"""Sandboxes this process has seen holding the kernel program (it stays there as long as the sandbox)."""


_KEEPER = (
    'python3 -u "$1/program.py" serve "$1" & echo $! > "$1/pid"; wait $!; echo $? > "$1/exit"; '
    'c=$(cat "$1/current" 2>/dev/null); [ -n "$c" ] && [ ! -e "$c/exit" ] && printf d 1<>"$c/reply"'
)
"""The kernel's parent: records its pid and exit status, and tells a caller waiting on a cell that it died."""


def _client(job: str, *, timeout: float, wait: float, reset: bool, limit: OutputLimit, put_code: str) -> str:
    """One command that makes sure the kernel runs, hands it the cell, and waits up to `wait` seconds for it.

    `put_code` is the shell (from `jobs.put_text`) that leaves the cell's source in the job's folder.

    The cell's job folder gets the kernel's pid as its `pid` and `tpid`, so job_status sees it running while the
    kernel lives and job_cancel signals the kernel (which interrupts the cell); the kernel writes `exit` itself.
    The shell holds the reply FIFO open (read-write, so opening never blocks) before the kernel gets the cell;
    the kernel writes "x" to it when the cell is done, the kernel's keeper "d" if the kernel died.
    """
    k, d = shlex.quote(KERNEL_DIR), shlex.quote(job)
    sizes = f"{limit.max_bytes} {limit.head_bytes} {limit.tail_bytes}"
    send = f'printf "%s %s %s\\n" "$D" {timeout:.3f} "{sizes}" > "$K/in"\n'
    waiting = send
    if wait > 0:
        waiting = (
            'exec 3<>"$D/reply"\n'
            f"{send}"
            f"r=$(timeout {wait:.3f} head -c 1 <&3 2>/dev/null)\n"
            'if [ "$r" = d ] && [ ! -e "$D/exit" ]; then\n'
            '  echo "[the Python kernel died during this cell: exit status '
            '$(cat "$K/exit" 2>/dev/null || echo unknown); a new one starts on the next call]" >> "$D/stderr"\n'
            "fi\n"
            "exec 3<&-\n"
            '[ "$r" = x ] && [ -e "$D/report.out" ] && {\n'
            '  cat "$D/report.out"; [ -s "$D/report.err" ] && cat "$D/report.err" >&2; exit 0; }\n'
        )
    # Every cell runs this, so the small files are read with the shell's own `read`, not `cat`.
    return f"""K={k}; D={d}; state=kept; note=; KEEPER={shlex.quote(_KEEPER)}
mkdir -p "$D" && {put_code} || exit 125
alive() {{ p=; {{ read -r p < "$K/pid"; }} 2>/dev/null; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }}
if {"true" if reset else "false"} && alive; then
  kill -KILL "$p" 2>/dev/null; rm -f "$K/pid"; state=reset
fi
if ! alive; then
  {_GENUINE}
  if [ -s "$K/pid" ]; then
    state=restarted; i=0; while [ ! -s "$K/exit" ] && [ "$i" -lt 20 ]; do sleep 0.05; i=$((i+1)); done
    note="the previous kernel ended with status $(cat "$K/exit" 2>/dev/null || echo unknown)"
  elif [ "$state" != reset ]; then state=started; fi
  rm -f "$K/pid" "$K/exit" "$K/ready" "$K/current"; [ -p "$K/in" ] || {{ rm -f "$K/in"; mkfifo "$K/in"; }}
  setsid /bin/sh -c "$KEEPER" kas-kernel "$K" </dev/null >>"$K/log" 2>&1 &
  i=0; while [ ! -e "$K/ready" ] && [ "$i" -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
  [ -e "$K/ready" ] || {{ echo "The Python kernel did not start:"; tail -c 2000 "$K/log"; }} >&2
fi
p=; {{ read -r p < "$K/pid"; }} 2>/dev/null
printf '%s\n%s\n' "$state" "$note" > "$D/kernel-state"; echo {limit_record(timeout)} > "$D/limit"
: > "$D/stdout"; : > "$D/stderr"; echo "$p" > "$D/pid"; echo "$p" > "$D/tpid"
mkfifo "$D/reply" || exit 126
{waiting}"""


async def install(sandbox: Sandbox) -> None:
    """Put the kernel program in the sandbox (cheap, and harmless to a kernel already running the old copy)."""
    await sandbox.write_file(f"{KERNEL_DIR}/program.py", PROGRAM.encode("utf-8"))


async def run_cell(
    sandbox: Sandbox,
    code: str,
    *,
    timeout: float,
    wait: float,
    reset: bool = False,
    keep: bool = True,
    env: dict[str, str] | None = None,
) -> CellResult:
    """Run `code` in the sandbox's kernel (or, with keep=False, in a fresh process), as a job."""
    job_id = new_job_id()
    job = job_dir(job_id)
    if not _installed.get(sandbox) or not keep:
        if not await sandbox.exists(f"{KERNEL_DIR}/program.py"):
            await install(sandbox)
        _installed.put(sandbox, True)
    environment = {"MPLBACKEND": "Agg", **(env or {})}
    put_code = await put_text(sandbox, f"{job}/cell.py", code)
    if not keep:
        command = (
            f"{_GENUINE} && {put_code} && "
            f"python3 -u {shlex.quote(KERNEL_DIR)}/program.py once {shlex.quote(job)} {timeout:.3f}; "
            f"s=$?; echo once > {shlex.quote(job)}/kernel-state; exit $s"
        )
        once = {"timeout": timeout + budget.ONCE_GRACE, "wait": wait, "env": environment, "job_id": job_id}
        try:
            result = await start_job(sandbox, command, **once)  # type: ignore[arg-type]
        except ProgramChanged:
            await install(sandbox)
            result = await start_job(sandbox, command, **once)  # type: ignore[arg-type]
        return await describe(sandbox, result)
    script = maybe_prune() + _client(
        job,
        timeout=timeout,
        wait=max(0.0, min(wait, timeout + budget.KERNEL_REPORT)),
        reset=reset,
        limit=report_limit(sandbox),
        put_code=put_code,
    )
    try:
        result = await run_then_report(sandbox, job_id, script, timeout=wait + budget.CELL_SCRIPT, env=environment)
    except ProgramChanged:
        await install(sandbox)
        result = await run_then_report(sandbox, job_id, script, timeout=wait + budget.CELL_SCRIPT, env=environment)
    return await describe(sandbox, result)


async def describe(sandbox: Sandbox, job: JobResult) -> CellResult:
    """What the kernel's files in a job's report say about the cell; its meta.json (value, error, figures) is
    read on its own when the report left it out to fit a small output cap."""
    meta_text = job.files.get("meta.json")
    if meta_text is None and "kernel-state" in job.files and not job.running:
        with contextlib.suppress(SandboxError):  # a kernel that died wrote none
            meta_text = await sandbox.read_file(f"{job_dir(job.job_id)}/meta.json")
    meta: dict[str, Any] = {}
    if meta_text is not None:
        try:
            meta = json.loads(meta_text)
        except ValueError:
            meta = {}
    lines = job.files.get("kernel-state", b"").decode("utf-8", "replace").splitlines()
    kernel = lines[0] if lines else "unknown"
    note = lines[1] if len(lines) > 1 and lines[1] else None
    figures = [
        Figure(
            path=entry["path"],
            inline=entry.get("inline"),
            width=entry.get("width", 0),
            height=entry.get("height", 0),
            error=entry.get("error"),
        )
        for entry in meta.get("figures", [])
    ]
    survived = None
    if job.state in ("timed_out", "cancelled"):
        survived = job.files.get("interrupted", b"").strip() != b"lost"
    return CellResult(
        job=job,
        kernel=kernel,
        kernel_note=note,
        value=meta.get("value"),
        error=meta.get("error"),
        figures=figures,
        figures_made=int(meta.get("figures_made", len(figures))),
        state_survived=survived,
    )


async def running(sandbox: Sandbox) -> bool:
    """Whether the sandbox's kernel is alive now (its variables are there for the next cell)."""
    k = shlex.quote(KERNEL_DIR)
    result = await sandbox.run_script(f'[ -s {k}/pid ] && kill -0 "$(cat {k}/pid)" 2>/dev/null', timeout=budget.PROBE)
    return result.exit_code == 0
