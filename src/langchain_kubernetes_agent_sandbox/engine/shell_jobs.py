"""Jobs: commands that keep running after the call that started them returned, built only on shell commands and
files, so they work on any runtime with a POSIX shell (the upstream reference runtime included).

A job lives in the sandbox, in `JOBS_DIR/<id>/`: `cmd` (the command), `stdout`, `stderr` (the full output,
never capped), `limit` (its time limit and start time), `pid` (its wrapper, leader of its own session), `tpid`
(the `timeout` process, leader of the command's process group), `exit` once it ended, `cancelled` when
cancelled. So a job survives a restart of the server and is visible from any replica; whoever can reach the
sandbox (the session's owner) can follow it.

Every command the tools run goes through `start`: it detaches the command, waits up to a bound, and returns
the output so far with the job id; a command that finished within the bound is just a result (with the paths of
its full output, the pointer for output beyond the inline cap).
"""

from __future__ import annotations

import base64
import re
import secrets
import shlex
import time
from collections.abc import Mapping

from .. import paths
from ..errors import InvalidArgumentError, NotFoundError, SandboxError, TimedOutError
from ..output import OutputLimit, dropped_marker
from ..results import TIMEOUT_EXIT_CODE, CommandResult
from ..sandbox import Sandbox, check_command
from . import budget
from .results import JobResult, JobState

JOBS_DIR = "/tmp/.kas/jobs"
"""Where jobs keep their files: the sandbox's own /tmp, which lasts as long as the sandbox on every provider."""

PROGRAM_CHANGED_EXIT = 120
PROGRAM_CHANGED_MARK = "KASREINSTALL"


class ProgramChanged(SandboxError):
    """A script found the sandbox's copy of a program of ours replaced: install it again, then retry."""


_ID = re.compile(r"^j-[0-9a-f]{12}$")
_HEADER = re.compile(
    rb"^KASJOB (\w+) (-?\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)\n(?P<files>(?:KASFILE [\w.-]+ [A-Za-z0-9+/=]*\n)*)"
)
REPORTED_FILES = ("kernel-state", "interrupted", "meta.json")
"""Small files a job may leave beside its output (the Python kernel's results), returned with every report, in
this order while they fit half the head of the output cap (a file left out can still be read: see `kernel`)."""
SMALL_FILE_BYTES = 65536
"""No reported file is larger (the kernel keeps its meta.json under this)."""

PRUNE_AFTER_MINUTES = 24 * 60
"""Folders of jobs that ended longer ago than this are deleted (their output files may be large)."""


longest_limit = budget.longest_job_limit


def maybe_prune() -> str:
    """Now and then (one call in 32), shell that deletes the folders of jobs that ended over a day ago."""
    if secrets.randbelow(32):
        return ""
    return (
        f"find {JOBS_DIR} -mindepth 2 -maxdepth 2 -name exit -mmin +{PRUNE_AFTER_MINUTES} "
        "-exec sh -c 'rm -rf \"${1%/exit}\"' kas-prune {} \\; 2>/dev/null\n"
    )


def new_job_id() -> str:
    return f"j-{secrets.token_hex(6)}"


def job_dir(job_id: str) -> str:
    if not _ID.match(job_id):
        raise NotFoundError(f"No job has the id {job_id!r}: job ids look like j-0123456789ab.")
    return f"{JOBS_DIR}/{job_id}"


_INLINE_BYTES = 64 * 1024
"""Text up to this size (quoted for the shell) travels inside the command that uses it. A command is one argument
of `sh -c`, and Linux refuses any argument over 128 KiB, so larger text is written as a file first."""


async def put_text(sandbox: Sandbox, path: str, text: str) -> str:
    """Shell that leaves `text` in the file `path`: the text inside the shell when small, else written now."""
    quoted = shlex.quote(text)
    if len(quoted.encode()) <= _INLINE_BYTES:
        return f"printf %s {quoted} > {shlex.quote(path)}"
    await sandbox.write_file(path, text.encode("utf-8", "surrogateescape"))
    return ":"


def limit_record(timeout: float) -> str:
    """What a job's `limit` file holds, quoted for the shell, for every later report: its time limit, and when it
    started by this server's clock (the sandbox may have no clock worth trusting, and reading one costs a process)."""
    return f"'{timeout:.3f} {time.time():.3f}'"


def _wrapper(limit: float) -> str:
    """The job's own shell (its folder is `$1`): records its pid, runs the command under `timeout`, records the
    exit status. The status is one short write, so a reader sees the file empty or whole."""
    return (
        'd=$1; echo $$ > "$d/pid"; '
        f'timeout -k {budget.KILL_GRACE:g} {limit:.3f} /bin/sh "$d/cmd" </dev/null >"$d/stdout" 2>"$d/stderr" & '
        'echo $! > "$d/tpid"; wait $!; echo $? > "$d/exit"'
    )


_CUT = "<<kas: output cut here>>"


def _stream(name: str, start: int, total: str, limit: OutputLimit, head: int | str) -> str:
    """Shell printing bytes `start`..`total` of the job's file `name`: whole when within `limit`, else its head,
    a cut line and its tail, reading only those parts (a job may have written gigabytes). Nothing is started
    for a stream with nothing new, and one process for the usual case of a whole stream from the start."""
    whole = f'head -c "$n" "$d/{name}"' if start == 0 else f'tail -c +{start + 1} "$d/{name}" | head -c "$n"'
    return (
        f"n=$(({total} - {start})); "
        f'if [ "$n" -le 0 ]; then :; elif [ "$n" -le $(({limit.max_bytes} - ${{#x}})) ]; then {whole}; '
        f'else tail -c +{start + 1} "$d/{name}" | head -c {head}; printf "\\n%s\\n" "{_CUT}"; '
        f'tail -c +$(({total} - {limit.tail_bytes} + 1)) "$d/{name}" | head -c {limit.tail_bytes}; fi'
    )


def _report(directory: str, limit: OutputLimit, cursor: str = "0:0") -> str:
    """Shell that prints a header line (state, exit status, sizes) and the output after `cursor`.

    Every call runs it, so it reads the small files with the shell's own `read` and both sizes with one `wc`.
    """
    out_from, err_from = parse_cursor(cursor)
    d = shlex.quote(directory)
    return (
        f'd={d}; c=; p=; {{ read -r c < "$d/exit"; }} 2>/dev/null; '
        'if [ -n "$c" ]; then s=exited; [ -e "$d/cancelled" ] && s=cancelled; '
        'else c=-1; s=lost; { read -r p < "$d/pid"; } 2>/dev/null; '
        '{ [ -z "$p" ] || kill -0 "$p"; } 2>/dev/null && s=running; fi; '
        'set -- 0 x 0; [ -e "$d/stdout" ] && [ -e "$d/stderr" ] && set -- $(wc -c "$d/stdout" "$d/stderr"); '
        'o=$1; e=$3; t=; t0=; { read -r t t0 < "$d/limit"; } 2>/dev/null; echo "KASJOB $s $c $o $e ${t:-0} ${t0:-0}"; '
        "x=; nl='\n'; "
        f'for f in {" ".join(REPORTED_FILES)}; do [ -s "$d/$f" ] || continue; '
        f'y="KASFILE $f $(head -c {SMALL_FILE_BYTES} "$d/$f" | base64 | tr -d "\\n")$nl"; '
        f'[ $((${{#x}} + ${{#y}})) -le {limit.head_bytes // 2} ] && x="$x$y"; done; '
        f'printf %s "$x"; h=$(({limit.head_bytes} - ${{#x}})); '
        f"{{ {_stream('stdout', out_from, '$o', limit, '$h')}; }}; x=; "
        f"{{ {_stream('stderr', err_from, '$e', limit, limit.head_bytes)}; }} >&2"
    )


def _uncut(text: str, total: int, limit: OutputLimit, reported: int = 0) -> tuple[str, int]:
    """Put the usual dropped-bytes marker where the script cut a stream; returns the text and bytes dropped."""
    cut = f"\n{_CUT}\n"
    if total <= limit.max_bytes - reported or cut not in text:
        return text, 0
    dropped = total - (limit.head_bytes - reported) - limit.tail_bytes
    head, _, tail = text.partition(cut)
    return head + dropped_marker(dropped) + tail, dropped


def parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        out, err = (int(part) for part in cursor.split(":"))
    except ValueError:
        raise InvalidArgumentError(
            f"The cursor {cursor!r} is not one a job result gave: pass the cursor from the last result, or omit it."
        ) from None
    if out < 0 or err < 0:
        raise InvalidArgumentError(f"The cursor {cursor!r} is negative: omit it to read from the start.")
    return out, err


def _parse(job_id: str, cursor: str, raw: CommandResult, limit: OutputLimit) -> JobResult:
    data = raw.stdout.encode("utf-8", "surrogateescape")
    match = _HEADER.match(data)
    if match is None:
        if raw.exit_code == PROGRAM_CHANGED_EXIT and raw.stdout.startswith(PROGRAM_CHANGED_MARK):
            raise ProgramChanged(f"the sandbox's copy of the kernel program is not this package's (job {job_id})")
        if "KASJOB" not in raw.stdout and raw.exit_code == 3:
            raise NotFoundError(f"No job {job_id} in this session: it never existed here, or the sandbox was reset.")
        detail = raw.stderr.strip()[:500] or "no message"
        if raw.timed_out:
            raise TimedOutError(
                f"The sandbox did not answer in time while handling job {job_id} ({detail}); the job may still run: "
                "follow it with job_status."
            )
        raise SandboxError(f"The sandbox could not handle job {job_id} (exit {raw.exit_code}): {detail}")
    state_name, code, out_total, err_total = (match.group(1).decode(), *map(int, match.groups()[1:4]))
    time_limit, started_at = (float(value) or None for value in match.groups()[4:6])
    files = {}
    for line in match.group("files").decode().splitlines():
        _, name, encoded = line.split(" ")
        files[name] = base64.b64decode(encoded)
    state: JobState = state_name  # type: ignore[assignment]
    if state == "exited" and code == TIMEOUT_EXIT_CODE:
        state = "timed_out"
    out_from, err_from = parse_cursor(cursor)
    out_bytes, err_bytes = max(out_total - out_from, 0), max(err_total - err_from, 0)
    reported = len(match.group("files"))
    stdout, out_dropped = _uncut(raw.stdout[len(match.group(0).decode()) :], out_bytes, limit, reported)
    stderr, err_dropped = _uncut(raw.stderr, err_bytes, limit)
    result = CommandResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=code if code >= 0 else -1,
        duration=raw.duration,
        timed_out=state == "timed_out",
        stdout_bytes=out_bytes,
        stderr_bytes=err_bytes,
        dropped_bytes=out_dropped + err_dropped + raw.dropped_bytes,
    )
    directory = job_dir(job_id)
    return JobResult(
        job_id=job_id,
        state=state,
        result=result,
        cursor=f"{max(out_total, out_from)}:{max(err_total, err_from)}",
        stdout_path=f"{directory}/stdout",
        stderr_path=f"{directory}/stderr",
        files=files,
        python="kernel-state" in files,
        limit=time_limit,
        started_at=started_at,
    )


async def start(
    sandbox: Sandbox,
    command: str,
    *,
    timeout: float,
    wait: float,
    cwd: str = paths.WORKDIR,
    env: Mapping[str, str] | None = None,
    job_id: str | None = None,
) -> JobResult:
    """Run `command` as a job limited to `timeout` seconds; wait up to `wait` seconds for it to end."""
    check_command(command)  # it reaches the shell inside the job's script, not through Sandbox.run
    job_id = job_id or new_job_id()
    d = shlex.quote(job_dir(job_id))
    longest = timeout + budget.KILL_GRACE + 1  # by then the job has ended by its own limit
    wait = max(0.0, min(wait, longest))
    script = (
        maybe_prune() + f"mkdir -p {d} && {await put_text(sandbox, f'{job_dir(job_id)}/cmd', command)} && "
        f": > {d}/stdout && : > {d}/stderr && echo {limit_record(timeout)} > {d}/limit || exit 125\n"
        f"setsid /bin/sh -c {shlex.quote(_wrapper(timeout))} kas-job {d} </dev/null >/dev/null 2>&1 &\n"
        "job=$!\n"
    )
    if wait <= 0:
        script += f'i=0; while [ ! -s {d}/pid ] && [ "$i" -lt 100 ]; do sleep 0.01; i=$((i+1)); done\n'
    elif wait >= longest:
        script += 'wait "$job"\n'  # the job ends within the wait by its own limit: no timer needed
    else:
        script += (
            "trap : USR1\n"
            f"( trap 'kill $p 2>/dev/null; exit 0' TERM; sleep {wait:.3f} & p=$!; wait $p; kill -s USR1 $$ ) "
            "</dev/null >/dev/null 2>&1 &\n"
            'w=$!; wait "$job"; kill "$w" 2>/dev/null\n'
        )
    return await run_then_report(sandbox, job_id, script, timeout=wait + budget.SCRIPT, cwd=cwd, env=env)


async def run_then_report(
    sandbox: Sandbox,
    job_id: str,
    script: str,
    *,
    timeout: float,
    cwd: str = paths.WORKDIR,
    env: Mapping[str, str] | None = None,
) -> JobResult:
    """Run `script` (which starts or waits for the job `job_id`), then report the job, in one command."""
    script += "\n" + _report(job_dir(job_id), report_limit(sandbox))
    raw = await sandbox.run_script(script, timeout=timeout, cwd=cwd, env=env)
    return _parse(job_id, "0:0", raw, report_limit(sandbox))


async def status(sandbox: Sandbox, job_id: str, cursor: str | None = None) -> JobResult:
    """The job's state and its output written after `cursor` (from the start when omitted)."""
    cursor = cursor or "0:0"
    directory = job_dir(job_id)
    script = f"[ -d {shlex.quote(directory)} ] || exit 3; " + _report(directory, report_limit(sandbox), cursor)
    return _parse(job_id, cursor, await sandbox.run_script(script, timeout=budget.SCRIPT), report_limit(sandbox))


def _until_ended(directory: str, seconds: float, also: str = "") -> str:
    """Shell polling until the job in `directory` has recorded its exit status, for up to `seconds`; `also` is
    checked on each round and may `break` early."""
    ticks = max(1, int(seconds / 0.05))
    return f'i=0; while [ ! -s {directory}/exit ] && [ "$i" -lt {ticks} ]; do {also}sleep 0.05; i=$((i+1)); done; '


async def wait(sandbox: Sandbox, job_id: str, timeout: float, cursor: str | None = None) -> JobResult:
    """Wait up to `timeout` seconds for the job to end, then report as `status` does."""
    cursor = cursor or "0:0"
    directory = shlex.quote(job_dir(job_id))
    wrapper_gone = f'[ -s {directory}/pid ] && ! kill -0 "$(cat {directory}/pid)" 2>/dev/null && break; '
    script = (
        f"[ -d {directory} ] || exit 3; "
        + _until_ended(directory, timeout, also=wrapper_gone)
        + _report(job_dir(job_id), report_limit(sandbox), cursor)
    )
    return _parse(
        job_id, cursor, await sandbox.run_script(script, timeout=timeout + budget.SCRIPT), report_limit(sandbox)
    )


async def cancel(sandbox: Sandbox, job_id: str) -> JobResult:
    """Signal the job's process group (TERM, then KILL after a grace period) and report how it ended."""
    directory = shlex.quote(job_dir(job_id))
    script = (
        f"[ -d {directory} ] || exit 3; "
        f"if [ ! -s {directory}/exit ]; then : > {directory}/cancelled; "
        f"t=$(cat {directory}/tpid 2>/dev/null); "
        '[ -n "$t" ] && { kill -s TERM -- "-$t"; kill -s TERM "$t"; } 2>/dev/null; '
        + _until_ended(directory, 2)
        + f'[ -s {directory}/exit ] || {{ {{ kill -s KILL -- "-$t"; kill -s KILL "$t"; }} 2>/dev/null; '
        f"p=$(cat {directory}/pid 2>/dev/null); "
        + _until_ended(directory, 2)
        + f'[ -s {directory}/exit ] || {{ kill -s KILL -- "-$p" 2>/dev/null; echo 137 > {directory}/exit; }}; }}; '
        "fi; " + _report(job_dir(job_id), report_limit(sandbox))
    )
    return _parse(job_id, "0:0", await sandbox.run_script(script, timeout=budget.CANCEL), report_limit(sandbox))


def report_limit(sandbox: Sandbox) -> OutputLimit:
    """What the job scripts print of each stream: a little under the sandbox's cap, so the cap never cuts it."""
    cap = sandbox.limits.output
    return OutputLimit(max_bytes=max(64, cap.max_bytes - 256), head_share=cap.head_share)
