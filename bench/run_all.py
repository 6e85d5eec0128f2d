"""Every benchmark in one run, as one table: each figure beside the baseline measured in the same run, and the
machine it ran on. Writes bench/results/report.md and report.json; `--update-readme` also rewrites the README's
performance section between `<!-- bench:start -->` and `<!-- bench:end -->`.

    .venv/bin/python bench/run_all.py [--update-readme]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import bench_adapter  # noqa: E402
import bench_egress  # noqa: E402
import bench_engine  # noqa: E402
import bench_fork  # noqa: E402
import bench_kubernetes  # noqa: E402
import bench_local  # noqa: E402
import bench_mcp  # noqa: E402
import bench_preview  # noqa: E402
import bench_python  # noqa: E402
import bench_resume  # noqa: E402
import bench_sandboxd  # noqa: E402
import bench_transfers  # noqa: E402
import bench_validation  # noqa: E402
from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state  # noqa: E402

Row = dict[str, Any]
"""benchmark, figure, value, unit, baseline (same unit, same run, or None), ratio."""


def machine_facts() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    memory = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.machine(),
        "memory": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def row(benchmark: str, figure: str, value: float, unit: str, baseline: float | None, label: str) -> Row:
    ratio = value / baseline if baseline else None
    return {
        "benchmark": benchmark,
        "figure": figure,
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "baseline_is": label,
        "ratio": None if ratio is None else round(ratio, 3),
    }


def local_rows(runs: int) -> list[Row]:
    rows, _ = asyncio.run(bench_local.measure(runs))
    return [row("local", name, value, "ms", base, "bare process / host file I/O") for name, value, base, _ in rows]


def fork_rows(runs: int) -> list[Row]:
    """fork_session of a 100 MiB workspace against `cp -a` of the same folder on the host (issue 16)."""
    return [
        row("fork (local)", name, value, "ms", base, label)
        for name, value, base, label in asyncio.run(bench_fork.measure(runs))
    ]


def egress_rows(runs: int) -> list[Row]:
    """GETs through the egress proxy against the same GETs directly (issue 13: at most 1.2x for 1 MiB, at most
    2 ms added per connection)."""
    return [
        row("egress (local)", name, value, "ms", base, label) for name, value, base, label in bench_egress.measure(runs)
    ]


def preview_rows(runs: int) -> list[Row]:
    """A 1 MiB GET through a preview URL against the same GET inside the sandbox (issue 16: at most 1.3x + 2 ms)."""
    return [
        row("preview (local)", name, value, "ms", base, label)
        for name, value, base, label in asyncio.run(bench_preview.measure(runs))
    ]


def transfer_rows(runs: int) -> list[Row]:
    """A 64 MiB download_file in pieces against one read of the whole file (the file is read once per download)."""
    return [
        row("transfers (local, MCP)", name, value, "ms", base, label)
        for name, value, base, label in asyncio.run(bench_transfers.measure(runs))
    ]


def mcp_rows(calls: int, clients: int, per_client: int) -> list[Row]:
    with temporary_state("kas-bench-") as state:
        figures = asyncio.run(bench_mcp.bench_provider("local", {"state_dir": str(state)}, calls, clients, per_client))
    return [
        row("mcp (local)", f["figure"], f["value"], f["unit"], f["baseline"], "direct Sandbox.run / idle RSS")
        for f in figures
    ]


def validation_rows(rounds: int) -> list[Row]:
    """The mcp client's validation of each tool's result against a 3-field schema's (issue 15: execute <= 2 ms)."""
    return [
        row("mcp client validation", f"{tool} result", value, "ms", base, "3-field schema")
        for tool, value, base, _ in asyncio.run(bench_validation.measure(rounds))
    ]


def engine_rows(rounds: int) -> list[Row]:
    """The engine's figures against their anchors: a bare bubblewrap spawn, a Jupyter kernel (issue 11)."""
    return [
        row("engine (local)", name, value, "ms", anchor, anchor_name)
        for name, value, anchor, anchor_name in asyncio.run(bench_engine.measure(rounds))
    ]


def python_rows(rounds: int) -> list[Row]:
    """The kernel against one python3 process per call, and the figure round trip (its target in the figure)."""
    return [
        row(
            "python (local)",
            f"{r['figure']}, target {r['target']}",
            r["value"],
            r["unit"],
            r["baseline"],
            "one python3 process per call",
        )
        for r in asyncio.run(bench_python.measure(rounds))
    ]


def adapter_rows(rounds: int) -> list[Row]:
    results = bench_adapter.run(rounds)
    baseline = results["local"]
    rows = []
    for backend, means in results.items():
        if backend == "local":
            continue
        total = sum(means.values()) * 1000
        rows.append(
            row(
                "adapter",
                f"{backend}: suite operations, mean total",
                total,
                "ms",
                sum(baseline.values()) * 1000,
                "local backend",
            )
        )
    return rows


def kubernetes_rows(rounds: int, commands: int) -> list[Row]:
    """The provider on both channels beside the client used directly, MCP over HTTP, streaming, throughput."""
    figures = asyncio.run(bench_kubernetes.main(rounds, commands))
    print(bench_kubernetes.report(figures))
    return [
        row("kubernetes (imitation)", f["figure"], f["value"], f["unit"], f["baseline"], f["baseline_is"])
        for f in figures
    ]


def sandboxd_rows(rounds: int, commands: int) -> list[Row]:
    """The provider on sandboxd pods of the real control plane beside the client used directly (issue 14: a
    command's first output line at the MCP client within 250 ms)."""
    figures = bench_sandboxd.main(rounds, commands)
    print(bench_kubernetes.report(figures))
    return [
        row(
            "kubernetes (sandboxd, real control plane)",
            f["figure"],
            f["value"],
            f["unit"],
            f["baseline"],
            f["baseline_is"],
        )
        for f in figures
    ]


def resume_rows(rounds: int) -> list[Row]:
    """A suspended session's resume and first command against a fresh claim's (issue 16), imitation and real."""
    return [
        row("suspend and resume", f["figure"], f["value"], f["unit"], f["baseline"], f["baseline_is"])
        for f in bench_resume.figures(rounds)
    ]


def markdown(rows: list[Row], facts: dict[str, Any]) -> str:
    lines = [
        f"Measured {facts['date']} on {facts['cpus']} x {facts['cpu_model']}, {facts['memory']} memory, "
        f"{facts['kernel']}, Python {facts['python']}, load average at start "
        f"{', '.join(map(str, facts['load_average_at_start']))}. Each ratio is against a baseline measured in the "
        "same run; regenerate with `.venv/bin/python bench/run_all.py --update-readme`.",
        "",
        "| benchmark | figure | value | baseline (same run) | ratio |",
        "|---|---|---:|---|---:|",
    ]
    for r in rows:
        baseline = "" if r["baseline"] is None else f"{r['baseline']:g} {r['unit']} ({r['baseline_is']})"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(f"| {r['benchmark']} | {r['figure']} | {r['value']:g} {r['unit']} | {baseline} | {ratio} |")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, table: str) -> None:
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} markers in its performance section")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{table}{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--runs", type=int, default=30, help="local provider: runs per figure")
    parser.add_argument("--calls", type=int, default=60, help="MCP: sequential calls per transport")
    parser.add_argument("--clients", type=int, default=32, help="MCP: concurrent HTTP clients")
    parser.add_argument("--per-client", type=int, default=10, help="MCP: calls per client")
    parser.add_argument("--validation-rounds", type=int, default=300, help="MCP client validation: rounds")
    parser.add_argument("--python-rounds", type=int, default=30, help="Python kernel: calls per figure")
    parser.add_argument("--rounds", type=int, default=5, help="adapter and Kubernetes: rounds")
    parser.add_argument("--fork-runs", type=int, default=5, help="fork: forks of the 100 MiB workspace")
    parser.add_argument("--commands", type=int, default=100, help="Kubernetes: commands per side")
    args = parser.parse_args()
    facts = machine_facts()
    rows = local_rows(args.runs)
    rows += engine_rows(args.calls)
    rows += fork_rows(args.fork_runs)
    rows += mcp_rows(args.calls, args.clients, args.per_client)
    rows += transfer_rows(args.fork_runs)
    rows += validation_rows(args.validation_rounds)
    rows += python_rows(args.python_rounds)
    rows += kubernetes_rows(args.rounds, args.commands)
    rows += sandboxd_rows(args.rounds, args.commands // 2)
    rows += resume_rows(args.rounds)
    rows += adapter_rows(args.rounds)
    rows += egress_rows(args.runs * 2)
    rows += preview_rows(args.runs * 2)
    table = markdown(rows, facts)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    (results / "report.md").write_text(table)
    (results / "report.json").write_text(json.dumps({"machine": facts, "rows": rows}, indent=2) + "\n")
    print("\n" + table)
    if args.update_readme:
        update_readme(BENCH.parent / "README.md", table)


if __name__ == "__main__":
    main()
