"""Core benchmark harness: aflow vs Metaflow vs a bare ProcessPoolExecutor.

Runs each benchmark flow in benchmarks/flows/ as a subprocess under aflow (current
python env) and under Metaflow (its own venv at benchmarks/.venv-metaflow, created on
demand), each with a fresh temporary datastore, and reports wall time, CPU time,
peak RSS and what the run left in the datastore. See benchmarks/README.md.

Peak RSS is ru_maxrss from os.wait4() on the direct child: the largest single
process among the child and the descendants it waited for, not their sum.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLOWS = HERE / "flows"
VENV = HERE / ".venv-metaflow"
METAFLOW_SPEC = "metaflow==2.19.*"
CASES = {"linear": "linear_flow.py", "foreach": "foreach_flow.py", "numpy": "numpy_flow.py"}
ENGINES = ("aflow", "metaflow")
IMPORT_LINE = re.compile(r"^from aflow import ", re.MULTILINE)


@dataclass
class Run:
    """One measured subprocess run."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    returncode: int
    verified: bool
    ds_files: int = 0
    ds_bytes: int = 0


def n_tasks(case: str, width: int) -> int:
    return {"linear": 4, "foreach": width + 3, "numpy": 3}[case]


def expected(case: str, width: int) -> str:
    return {
        "linear": "BENCH_RESULT x=3",
        "foreach": f"BENCH_RESULT total={width * (width - 1)}",
        "numpy": "BENCH_RESULT total=49999995000000",
    }[case]


def measure(cmd: list[str], cwd: Path, env: dict[str, str], expect: str, timeout: float) -> Run:
    """Run cmd to completion, timing it and reading its rusage via os.wait4."""
    out_path = cwd / "bench-output.log"
    with out_path.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text(errors="replace")
    out_path.unlink()
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-15:])
        print(f"  FAILED (rc={proc.returncode}): {' '.join(cmd)}\n{tail}", file=sys.stderr)
    cpu = ru.ru_utime + ru.ru_stime
    return Run(wall, cpu, ru.ru_maxrss / 1024, proc.returncode, expect in text)


def du(path: Path) -> tuple[int, int]:
    """Count regular files and their bytes under path."""
    files = size = 0
    for root, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            files, size = files + 1, size + st.st_size
    return files, size


def aflow_exe() -> str | None:
    local = Path(sys.executable).parent / "aflow"
    return str(local) if local.exists() else shutil.which("aflow")


def venv_python() -> Path:
    return VENV / "bin" / "python"


def pkg_version(python: str | Path, dist: str) -> str | None:
    """Installed version of a distribution in the given interpreter's env, if any."""
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    res = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else None


def ensure_metaflow_venv() -> None:
    """Create benchmarks/.venv-metaflow with Metaflow (and the host's numpy) if missing."""
    py = venv_python()
    if (
        py.exists()
        and subprocess.run([py, "-c", "import metaflow, numpy"], capture_output=True).returncode == 0
    ):
        return
    print(f"setting up {VENV} ...", file=sys.stderr)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    host_numpy = pkg_version(sys.executable, "numpy")  # same numpy on both sides
    numpy_spec = f"numpy=={host_numpy}" if host_numpy else "numpy"
    subprocess.run([py, "-m", "pip", "install", "-q", METAFLOW_SPEC, numpy_spec], check=True)


def baseline_tree(ref: str, into: Path) -> Path:
    """aflow as it is at git `ref` (e.g. main, HEAD~3), extracted under `into` to run beside this
    tree: the same flows, the same machine, the same moment, so their ratio is the change's cost."""
    repo = HERE.parent
    # pyproject.toml too: an aflow not installed under its distribution name reads its requirements
    # from the checkout's pyproject, so a tree without it fails every run
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", ref, "aflow", "pyproject.toml"], capture_output=True
    )
    if archive.returncode != 0:
        sys.exit(f"--baseline {ref}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run_case(
    engine: str, case: str, width: int, workers: int, timeout: float, code: Path | None = None
) -> Run:
    """Run one flow under one engine in a fresh temp dir and measure it; `code`: aflow from there
    (a --baseline tree) instead of this one."""
    flow = FLOWS / CASES[case]
    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "BENCH_FOREACH_WIDTH": str(width)}
        if code is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [env.get("PYTHONPATH")])])
        if engine == "aflow":
            store = tmp / ".aflow"
            env["AFLOW_DATASTORE_ROOT"] = str(store)
            cmd = [aflow_exe() or "aflow", "run", str(flow), "--max-workers", str(workers)]
        else:
            store = tmp / ".metaflow"
            mf_flow = tmp / f"{flow.stem}_mf.py"
            source, n = IMPORT_LINE.subn("from metaflow import ", flow.read_text())
            assert n == 1, f"{flow} must have exactly one 'from aflow import' line"
            mf_flow.write_text(source)
            env.update(
                USERNAME="bench",
                METAFLOW_HOME=str(tmp / "mf-home"),
                METAFLOW_DEFAULT_DATASTORE="local",
                METAFLOW_DEFAULT_METADATA="local",
                METAFLOW_DATASTORE_SYSROOT_LOCAL=str(tmp),
            )
            cmd = [str(venv_python()), str(mf_flow), "run", "--max-workers", str(workers)]
            if case == "foreach":  # Metaflow refuses foreach wider than 100 by default
                cmd += ["--max-num-splits", str(max(width, 100))]
        run = measure(cmd, tmp, env, expected(case, width), timeout)
        run.ds_files, run.ds_bytes = du(store)
        return run


def run_ppe(width: int, workers: int, timeout: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-ppe-") as tmp:
        cmd = [sys.executable, str(HERE / "ppe_baseline.py"), str(width), str(workers)]
        return measure(cmd, Path(tmp), dict(os.environ), expected("foreach", width), timeout)


def import_time(python: str, module: str, tries: int = 5) -> float | None:
    """Best-of-N in-process import time of module (interpreter start-up excluded)."""
    code = f"import time;t=time.perf_counter();import {module};print(time.perf_counter()-t)"
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(tries):
            res = subprocess.run([python, "-c", code], cwd=tmp, capture_output=True, text=True)
            if res.returncode != 0:
                return None
            best = min(float(res.stdout.split()[-1]), best or float("inf"))
    return best


def summarize(runs: list[Run], tasks: int) -> dict[str, float | int | bool]:
    """Medians of the timing and RSS figures; datastore counts from the last run."""
    return {
        "wall_s": statistics.median(r.wall_s for r in runs),
        "cpu_s": statistics.median(r.cpu_s for r in runs),
        "peak_rss_mib": statistics.median(r.peak_rss_mib for r in runs),
        "ds_files": runs[-1].ds_files,
        "ds_mib": runs[-1].ds_bytes / 2**20,
        "files_per_task": runs[-1].ds_files / tasks,
        "ok": all(r.returncode == 0 and r.verified for r in runs),
    }


def fmt(value: float | int | bool | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def ratio(num: float | None, den: float | None) -> str:
    if num is None or not den:
        return "n/a"
    return f"{num / den:.2f}x" if num < den else f"{num / den:.1f}x"


def print_table(
    results: dict[str, dict[str, dict]], imports: dict[str, float | None], width: int
) -> None:
    rows: list[tuple[str, str, str, str, str]] = []
    metrics = [
        ("wall s", "wall_s"),
        ("cpu s (user+sys)", "cpu_s"),
        ("peak RSS MiB", "peak_rss_mib"),
        ("datastore files", "ds_files"),
        ("datastore MiB", "ds_mib"),
        ("files / task", "files_per_task"),
        ("result ok", "ok"),
    ]
    for case in results:
        for label, key in metrics:
            a = results[case].get("aflow", {}).get(key)
            m = results[case].get("metaflow", {}).get(key)
            r = "" if key == "ok" else ratio(m, a)
            rows.append((case, label, fmt(a), fmt(m), r))
    ai, mi = imports.get("aflow"), imports.get("metaflow")
    rows.append(("import", "import s (best of 5)", fmt(ai), fmt(mi), ratio(mi, ai)))
    header = ("case", "metric", "aflow", "metaflow", "metaflow/aflow")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    line = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for i, row in enumerate(rows):
        if i and row[0] != rows[i - 1][0]:
            print()
        print(line.format(*row))
    ppe = results.get("foreach", {}).get("ppe")
    if ppe:
        fe = results["foreach"]
        print(
            f"\nforeach baseline, ProcessPoolExecutor ({width} calls): "
            f"wall {fmt(ppe['wall_s'])} s, "
            f"peak RSS {fmt(ppe['peak_rss_mib'])} MiB, ok {fmt(ppe['ok'])}; "
            f"aflow/ppe {ratio(fe.get('aflow', {}).get('wall_s'), ppe['wall_s'])}, "
            f"metaflow/ppe {ratio(fe.get('metaflow', {}).get('wall_s'), ppe['wall_s'])}"
        )


def print_against_baseline(results: dict[str, dict[str, dict]], base: str) -> None:
    """This tree's aflow beside the --baseline tree's, measured alternately in this run."""
    print(f"\nthis tree vs {base} (same run, alternating; ratio = this tree / baseline)")
    print(f"{'case':<8}  {'metric':<18}  {base:>14}  {'this tree':>10}  {'ratio':>6}")
    for case, by in results.items():
        if "aflow" not in by or base not in by:
            continue
        for label, key in (("wall s", "wall_s"), ("cpu s (user+sys)", "cpu_s")):
            b, a = by[base][key], by["aflow"][key]
            print(f"{case:<8}  {label:<18}  {fmt(b):>14}  {fmt(a):>10}  {a / b:>5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; median is kept")
    ap.add_argument("--cases", default=",".join(CASES), help="comma list of: linear,foreach,numpy")
    ap.add_argument("--foreach-width", type=int, default=1000)
    ap.add_argument("--max-workers", type=int, default=16)
    ap.add_argument("--skip-aflow", action="store_true")
    ap.add_argument("--skip-metaflow", action="store_true")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess run")
    ap.add_argument("--json", type=Path, help="write all results to this file")
    ap.add_argument(
        "--baseline",
        metavar="GIT_REF",
        help="also run aflow as of this git ref (e.g. main) beside this tree, alternating, and "
        "print this tree's figures against it",
    )
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    if unknown := set(cases) - set(CASES):
        ap.error(f"unknown cases: {', '.join(sorted(unknown))}")
    engines = [e for e in ENGINES if not getattr(args, f"skip_{e}")]
    if "aflow" in engines and aflow_exe() is None:
        print("aflow CLI not found (pip install -e .); skipping aflow", file=sys.stderr)
        engines.remove("aflow")
    if "metaflow" in engines:
        ensure_metaflow_venv()

    imports: dict[str, float | None] = {}
    if "aflow" in engines:
        imports["aflow"] = import_time(sys.executable, "aflow")
    if "metaflow" in engines:
        imports["metaflow"] = import_time(str(venv_python()), "metaflow")

    raw: dict[str, dict[str, list[Run]]] = {c: {} for c in cases}
    base_dir = tempfile.TemporaryDirectory(prefix="bench-baseline-") if args.baseline else None
    base_code = baseline_tree(args.baseline, Path(base_dir.name)) if base_dir else None
    base_name = f"aflow@{args.baseline}"
    for rep in range(args.repeat):
        for case in cases:
            jobs = [*engines, "ppe"] if case == "foreach" else list(engines)
            if base_code is not None and "aflow" in jobs:
                jobs.insert(jobs.index("aflow"), base_name)
            for engine in jobs:
                print(
                    f"[{case}] {engine} run {rep + 1}/{args.repeat} ...",
                    end=" ",
                    file=sys.stderr,
                    flush=True,
                )
                if engine == "ppe":
                    run = run_ppe(args.foreach_width, args.max_workers, args.timeout)
                elif engine == base_name:
                    run = run_case(
                        "aflow", case, args.foreach_width, args.max_workers, args.timeout, base_code
                    )
                else:
                    run = run_case(engine, case, args.foreach_width, args.max_workers, args.timeout)
                print(f"{run.wall_s:.2f}s rc={run.returncode}", file=sys.stderr, flush=True)
                raw[case].setdefault(engine, []).append(run)

    tasks = {c: n_tasks(c, args.foreach_width) for c in cases}
    results = {c: {e: summarize(runs, tasks[c]) for e, runs in by.items()} for c, by in raw.items()}
    print(
        f"\nmachine: {os.cpu_count()} cpus, python {platform.python_version()}, "
        f"--max-workers {args.max_workers}, --repeat {args.repeat} (medians)\n"
    )
    print_table(results, imports, args.foreach_width)
    if base_code is not None:
        print_against_baseline(results, base_name)
    if args.json:
        payload = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "versions": {
                "aflow": pkg_version(sys.executable, "aflow"),
                "metaflow": pkg_version(venv_python(), "metaflow") if VENV.exists() else None,
                "numpy": pkg_version(sys.executable, "numpy"),
            },
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "import_s": imports,
            "summary": results,
            "runs": {
                c: {e: [asdict(r) for r in runs] for e, runs in by.items()} for c, by in raw.items()
            },
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
