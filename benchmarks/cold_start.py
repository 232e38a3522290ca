"""Cold start of a batch script: the wall time of a fresh process that loads a saved Forecaster
and forecasts once, recorded to benchmarks/results/cold_start.csv.

A small default Forecaster (s4d, one hourly series, a few training steps) is fit, saved and
exported once into a temporary folder (by the tsk being timed). Then each round starts a fresh
Python for every path, in turn (so that the paths share the machine's load):

- `tsk.load`: `import tsk; m = tsk.load(dir); m.predict(df)`;
- `tsk.exported`: `import tsk.exported; m = tsk.exported.load(dir); m.predict(df)` (the
  `torch.export` program and what predict needs around it);
- `import torch`: torch alone, the floor under both.

Each row is one path: the median, min and max over `--runs` rounds (the whole process, from
its start to its exit), with the machine, versions, date, the load average before and after
(a busy machine slows every path: compare rows of one run, not of different runs) and the
largest imports of one `python -X importtime` run of the path. `--before DIR` also times the
tsk of another checkout (e.g. `git worktree add /tmp/tsk-before HEAD~1`) in the same rounds,
with a model it fits itself (a tsk without `export` has no `tsk.exported` row); `tree` names
the checkout (its commit, "+changes" for an edited work tree, or `--before-name`).

    uv run python benchmarks/cold_start.py --runs 7 --before /tmp/tsk-before
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from results_io import append_row, machine

RESULTS = Path(__file__).parent / "results" / "cold_start.csv"
COLUMNS = ["path", "runs", "median_s", "min_s", "max_s", "backbone", "lookback", "horizon",
           "load_before", "load_after", "top_imports", "tree", "machine", "cpus", "python",
           "torch", "tsk", "date"]
PATHS = {
    "tsk.load": "import tsk\nmodel = tsk.load(sys.argv[1])",
    "tsk.exported": "import tsk.exported\nmodel = tsk.exported.load(sys.argv[1])",
    "import torch": "import torch",
}
PREDICT = "\nimport pandas as pd\nmodel.predict(pd.read_csv(sys.argv[2], parse_dates=['ds']))"
PREPARE = """
import json, sys
import pandas as pd
import tsk
folder = sys.argv[1]
data = pd.read_csv(folder + "/history.csv", parse_dates=["ds"])
model = tsk.Forecaster(horizon=24, max_steps=20, enable_progress_bar=False, random_state=0)
model.fit(data).save(folder + "/model")
exports = hasattr(model, "export")
if exports:
    model.export(folder + "/exported")
print(json.dumps({"backbone": model.backbone, "lookback": model.lookback_,
                  "horizon": model.horizon, "exports": exports, "tsk": tsk.__version__}))
"""


def history(length: int = 3000) -> pd.DataFrame:
    """One noisy hourly series with a daily season."""
    t = np.arange(length)
    y = np.sin(2 * np.pi * t / 24) + 0.1 * np.random.default_rng(0).standard_normal(length)
    return pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=length,
                                                             freq="h"), "y": y})


def script(path: str) -> str:
    code = "import sys\n" + PATHS[path]
    return code + PREDICT if path != "import torch" else code


def run(path: str, folder: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    target = folder / ("exported" if path == "tsk.exported" else "model")
    # in `folder`: `python -c` puts the working directory first on its path, before the tree's
    return subprocess.run([sys.executable, *extra, "-c", script(path), str(target),
                           str(folder / "history.csv")], capture_output=True, text=True, env=env,
                          cwd=folder, check=True)


def timed(path: str, folder: Path, env: dict[str, str]) -> float:
    begun = time.perf_counter()
    run(path, folder, env)
    return time.perf_counter() - begun


def top_imports(path: str, folder: Path, env: dict[str, str], count: int = 6) -> str:
    """The `count` packages of one run of `path` whose import took longest, in seconds, each
    with what it imported first (wherever it was imported: `sklearn` includes `scipy`)."""
    stderr = run(path, folder, env, "-X", "importtime").stderr
    found = [(int(m[1]), m[2]) for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \| +(\w+)$",
                                                    stderr, re.MULTILINE)]
    return "; ".join(f"{name} {us / 1e6:.2f}" for us, name in sorted(found, reverse=True)[:count])


def tree_name(tree: Path) -> str:
    """The checkout's commit, with "+changes" when its work tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True,
                              text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or tree.name  # not a git checkout: its name
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def prepare(tree: Path, folder: Path) -> tuple[dict, dict[str, str]]:
    """Fit, save and export (where that tsk can) the model with the tsk of `tree`, in `folder`;
    returns what it fit and the environment that imports that tsk."""
    folder.mkdir()
    history().to_csv(folder / "history.csv", index=False)
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    prepared = subprocess.run([sys.executable, "-c", PREPARE, str(folder)], env=env, cwd=folder,
                              capture_output=True, text=True, check=True)
    return json.loads(prepared.stdout.splitlines()[-1]), env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per path")
    parser.add_argument("--before", type=Path, default=None,
                        help="a checkout of the earlier tsk, timed in the same rounds")
    parser.add_argument("--before-name", default="before")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    this = Path(__file__).resolve().parents[1]
    trees = {tree_name(this): this}
    if args.before is not None:
        trees[args.before_name] = args.before
    with tempfile.TemporaryDirectory(prefix="tsk-cold-start-") as tmp:
        models, cells = {}, []  # cells: (tree, path, folder, env); torch alone once
        for i, (name, tree) in enumerate(trees.items()):
            models[name], env = prepare(tree, Path(tmp) / str(i))
            cells += [(name, path, Path(tmp) / str(i), env) for path in PATHS
                      if (path != "import torch" or i == 0)
                      and (path != "tsk.exported" or models[name]["exports"])]
        load_before = os.getloadavg()[0]
        times: dict[tuple[str, str], list[float]] = {cell[:2]: [] for cell in cells}
        for _ in range(args.runs):
            for name, path, folder, env in cells:  # in turn: they share the machine's load alike
                times[name, path].append(timed(path, folder, env))
        load_after = os.getloadavg()[0]
        imports = {(name, path): top_imports(path, folder, env) for name, path, folder, env in cells}
    for (name, path), seconds in times.items():
        model = models[name]
        row = {"path": path, "runs": args.runs, "median_s": round(statistics.median(seconds), 3),
               "min_s": round(min(seconds), 3), "max_s": round(max(seconds), 3),
               "backbone": model["backbone"], "lookback": model["lookback"],
               "horizon": model["horizon"], "load_before": round(load_before, 2),
               "load_after": round(load_after, 2), "top_imports": imports[name, path],
               "tree": name, "machine": machine(), "cpus": os.cpu_count(),
               "python": sys.version.split()[0], "torch": torch.__version__.split("+")[0],
               "tsk": model["tsk"], "date": dt.date.today().isoformat()}
        append_row(args.out, COLUMNS, row)
        print(f"{name:<16} {path:<14} median {row['median_s']:.2f} s (min {row['min_s']:.2f}, "
              f"max {row['max_s']:.2f}) over {args.runs} fresh processes; {imports[name, path]}")
    print(f"load average {load_before:.2f} before, {load_after:.2f} after ({os.cpu_count()} CPUs): "
          f"{'a busy machine, every path slower' if max(load_before, load_after) > 0.5 else 'quiet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
