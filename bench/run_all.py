"""Run every benchmark in bench/ (bench_*.py), then collect bench/out/*.json into results.json/.md.

  python bench/run_all.py                 all benchmarks
  python bench/run_all.py download eval   only those whose name contains a word given
  python bench/run_all.py --collect-only  rebuild the tables: results.json updated by bench/out/*.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import OUT_DIR, machine  # noqa: E402


def main() -> int:
    args = sys.argv[1:]
    collect_only = "--collect-only" in args  # just rebuild results.json/.md from bench/out/
    only = [a for a in args if a != "--collect-only"]
    scripts = [] if collect_only else sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(o in s.stem for o in only)]
    failures = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.time()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"== {script.name}: exit {rc} in {time.time() - start:.0f}s", flush=True)
        if rc:
            failures.append(script.name)
    # the last figures of every benchmark: results.json as committed, updated by whatever ran here
    previous = HERE / "results.json"
    by_name = {r["name"]: r for r in json.loads(previous.read_text())["benchmarks"]} if previous.is_file() else {}
    for path in sorted(OUT_DIR.glob("*.json")):
        result = json.loads(path.read_text())
        by_name[result["name"]] = result
    results = [by_name[name] for name in sorted(by_name)]
    (HERE / "results.json").write_text(json.dumps({"machine": machine(), "benchmarks": results}, indent=2))
    lines = ["# Benchmark results", "", f"Machine: {machine()}", "",
             "| benchmark | metric | ours | peer | peer value | ratio | target |", "|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["rows"]:
            lines.append(f"| {res['name']} | {r['metric']} {r.get('units', '')} | {r['ours']} | "
                         f"{r.get('peer_name') or ''} | {r.get('peer') if r.get('peer') is not None else ''} | "
                         f"{r.get('ratio') if r.get('ratio') is not None else ''} | {r.get('target', '')} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if failures:
        print(f"failed: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
