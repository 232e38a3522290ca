"""Render benchmarks/results/accuracy.csv as markdown tables beside the published numbers of
benchmarks/anchors.csv (with their sources): ETT multivariate with the closed-form linear floor,
univariate (S) beside NLinear, TPGN on its own protocol beside its paper, and Mamba in S-Mamba's
setting beside the S-Mamba paper (MSE / MAE).

    uv run python benchmarks/report.py   # writes benchmarks/results/accuracy.md and RESULTS.md

RESULTS.md gathers every benchmark's generated page (accuracy.md, classification.md, smnist.md,
speech.md, the kernel and speed pages) into one file, each page's headings one level down.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).parent / "results" / "accuracy.csv"
TPGN_RESULTS = Path(__file__).parent / "results" / "accuracy_tpgn_protocol.csv"
ALL_RESULTS = RESULTS.parent / "RESULTS.md"
# the generated pages RESULTS.md gathers, in this order (the ones that exist)
PAGES = ("accuracy", "ridge_strength", "classification", "smnist", "speech", "tuning", "kernels",
         "kernels_gpu", "kernels_lstm_scan", "kernels_selective_scan_quiet_2threads", "tokens_speed",
         "fft_length",
         "fft_backward", "closed_loop", "throughput", "profile_default_fit", "kernels_scan2d",
         "kernels_scan2d_gpu", "kernels_lstm_scan_gpu", "chimera",
         "video", "points", "vision", "s4_kernel_speed", "m4")

ANCHORS = Path(__file__).parent / "anchors.csv"  # the published numbers and their sources
RECIPE = "v4"  # the current training recipe (accuracy.RECIPE, without importing torch)


def published(task: str, model: str) -> dict[tuple[str, int], tuple[float, float]]:
    """(dataset, horizon) -> (MSE, MAE) of one model's published (or floor) figures in
    benchmarks/anchors.csv."""
    rows = pd.read_csv(ANCHORS)
    rows = rows[(rows.task == task) & (rows.model == model)]
    table = rows.pivot_table(index=["dataset", "horizon"], columns="metric", values="value")
    return {(data, int(horizon)): (row.mse, row.get("mae", float("nan")))
            for (data, horizon), row in table.iterrows()}


def _pair(values: tuple[float, float]) -> str:
    return f"{values[0]:.3f} / {values[1]:.3f}"


# the multivariate ETT table's references: PatchTST/64 (lookback 512), DLinear (336) and the
# closed-form ridge floor (336), as "MSE / MAE"; and the best published MSE per cell, over
# PatchTST/64, PatchTST/42 and DLinear
_PATCH64, _PATCH42 = published("forecasting", "PatchTST/64"), published("forecasting", "PatchTST/42")
_DLINEAR, _FLOOR = published("forecasting", "DLinear"), published("forecasting", "linear floor")
PUBLISHED = {cell: (_pair(_PATCH64[cell]), _pair(_DLINEAR[cell]), _pair(_FLOOR[cell]))
             for cell in sorted(_PATCH64, key=lambda c: (c[0], c[1]))}
BEST_PUBLISHED_MSE = {cell: min(_PATCH64[cell][0], _PATCH42[cell][0], _DLINEAR[cell][0])
                      for cell in PUBLISHED}
TPGN_PAPER = published("forecasting-tpgn", "TPGN")  # its own protocol: S on OT, 60/20/20, L 168
SMAMBA_PAPER = published("forecasting-smamba", "S-Mamba")  # lookback 96, M, TSLib borders
NLINEAR_S = published("forecasting-univariate", "NLinear")  # S on OT, TSLib borders
ILI_RESULTS = RESULTS.parent / "accuracy_ili.csv"
ILI_PUBLISHED = {model: published("forecasting-ili", model)
                 for model in ("linear floor", "PatchTST/64", "PatchTST/42", "DLinear")}


def read_results(path: Path) -> pd.DataFrame:
    """A results CSV, with what rows from before a column existed meant filled in: random
    start, time-step tokens, window normalization (RevIN) on, no calendar inputs, no other
    backbone options."""
    results = pd.read_csv(path)
    for column in ("recipe", "linear_start_mse"):  # absent from files written before them
        if column not in results:
            results[column] = None
    return results.assign(recipe=results.recipe.fillna("v1"),
                          ridge_init=results.ridge_init.fillna(False).astype(bool),
                          start_kept=results.start_kept.fillna(False).astype(bool),
                          tokens=results.tokens.fillna("time"),
                          instance_norm=results.instance_norm.fillna("on"),
                          time_features=results.time_features.fillna(False).astype(bool),
                          backbone_kwargs=results.backbone_kwargs.fillna(""))


def start_text(ridge_init: bool, cell: pd.DataFrame) -> str:
    """'random', 'ridge', or 'ridge (kept)': no epoch beat the closed-form start on validation,
    so it was kept."""
    return ("ridge" + (" (kept)" if cell.start_kept.all() else "")) if ridge_init else "random"


def backbone_label(backbone: str, kwargs: str) -> str:
    """The backbone's name, with its non-default config (JSON `backbone_kwargs`) when it has one."""
    if not kwargs:
        return backbone
    return f"{backbone} ({', '.join(f'{k}={v}' for k, v in json.loads(kwargs).items())})"


def render_vs_reference(results: pd.DataFrame, reference: dict, name: str, decimals: int) -> str:
    """Rows next to one reference's MSE / MAE per (dataset, horizon), printed to the reference's
    own `decimals`, with the MSE ratio."""
    rows = [f"| data | H | backbone | lookback | d_model | window norm | calendar inputs "
            f"| start | lr | tsk MSE / MAE | {name} MSE / MAE | tsk / {name} MSE | epochs |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    norm_text = {"on": "RevIN", "off": "none"}
    for (data, horizon, backbone, lookback, d_model, norm, calendar, ridge_init, lr, kwargs), cell \
            in results.groupby(["dataset", "horizon", "backbone", "lookback", "d_model",
                                "instance_norm", "time_features", "ridge_init", "learning_rate",
                                "backbone_kwargs"]):
        backbone = backbone_label(backbone, kwargs)
        mse, mae = cell.mse.mean(), cell.mae.mean()
        seeds = f" (±{cell.mse.std():.4f}, {len(cell)} seeds)" if len(cell) > 1 else ""
        ref = reference.get((data, horizon))
        ratio = f"{mse / ref[0]:.2f}" if ref else ""
        ref_text = f"{ref[0]:.{decimals}f} / {ref[1]:.{decimals}f}" if ref else ""
        rows.append(f"| {data} | {horizon} | {backbone} | {lookback} | {d_model} | {norm_text[norm]} | "
                    f"{'yes' if calendar else 'no'} | {start_text(ridge_init, cell)} | {lr:g} | "
                    f"{mse:.4f} / {mae:.4f}{seeds} | {ref_text} | "
                    f"{ratio} | {cell.epochs.mean():.0f} |")
    return "\n".join(rows)


def run_on(row: pd.Series) -> str:
    """'H100 GPU' or '2-core CPU': where a row's seconds per epoch were measured ('shared' when
    other fits ran on that GPU at the same time, so its seconds are not that GPU's speed)."""
    gpu = str(row.machine).rsplit(", ", 1)[-1]
    if gpu.startswith("no GPU"):  # and what the machine field adds, e.g. where other epochs ran
        return f"{row.cpus}-core CPU{gpu.removeprefix('no GPU')}"
    return gpu.replace("NVIDIA ", "").split(" ")[0] + " GPU" + (", shared" if "shared" in gpu else "")


def timing(cell: pd.DataFrame) -> str:
    """Seconds per epoch and where, from the runs on the machine of the cell's first run (seeds
    run elsewhere are named, not averaged in: a CPU's and a GPU's seconds do not mix)."""
    first = cell.machine == cell.machine.iloc[0]
    where = run_on(cell.iloc[0])
    others = cell[~first]
    if len(others):
        where += f" ({first.sum()} of {len(cell)} seeds; the others on {run_on(others.iloc[0])})"
    return f"{cell[first].seconds_per_epoch.mean():.0f} | {where}"


# the columns that tell one multivariate cell's runs from another's (seeds are averaged)
CELL = ["dataset", "horizon", "backbone", "lookback", "tokens", "ridge_init", "learning_rate",
        "time_features", "instance_norm", "d_model", "backbone_kwargs", "recipe"]


def render(results: pd.DataFrame) -> str:
    rows = [
        "| data | H | backbone | lookback | start | lr | tsk MSE / MAE | vs floor | epochs | s/epoch | "
        "run on | PatchTST/64 | DLinear | linear floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    grouped = results[results.setting == "M"].groupby(CELL)
    for (data, horizon, backbone, lookback, tokens, ridge_init, lr, calendar, norm, _, kwargs,
         recipe), cell in grouped:
        backbone = backbone_label(backbone, kwargs)
        notes = [n for n, on in ((tokens, tokens != "time"), ("calendar", calendar),
                                 ("no RevIN", norm == "off"), (f"recipe {recipe}", recipe != "v1"))
                 if on]
        lookback = f"{lookback} ({', '.join(notes)})" if notes else lookback
        start = start_text(ridge_init, cell)
        mse, mae = cell.mse.mean(), cell.mae.mean()
        seeds = f" (±{cell.mse.std():.3f}, {len(cell)} seeds)" if len(cell) > 1 else ""
        published = PUBLISHED.get((data, horizon), ("", "", ""))
        floor = float(published[2].split("/")[0]) if published[2] else float("nan")
        # the floor is published to 3 decimals: closer than 0.002 is a tie, not a win or a loss
        verdict = "ties" if abs(mse - floor) < 0.002 else "beats" if mse < floor else "loses"
        rows.append(
            f"| {data} | {horizon} | {backbone} | {lookback} | {start} | {lr:g} | "
            f"{mse:.3f} / {mae:.3f}{seeds} | "
            f"{verdict} ({mse - floor:+.3f}) | {cell.epochs.mean():.0f} | "
            f"{timing(cell)} | "
            f"{' | '.join(published)} |"
        )
    return "\n".join(rows)


def render_defaults(results: pd.DataFrame) -> str:
    """One MSE per ETT cell and backbone at `Forecaster(backbone)`'s defaults (lookback 336; the
    generic head from the ridge start, a paper's own network as its paper; mean over seeds), the
    newest recipe's rows where a cell has them, beside the linear start, the best published MSE
    and the floor. A backbone whose fit kept the linear start (no validation beat it) says
    "start": that number is the linear start's, in its own column. Bold: at or below the best
    published, to 3 decimals."""
    defaults = default_rows(results)
    names = sorted(defaults.backbone.unique())
    rows = [f"| data | H | {' | '.join(names)} | linear start | best published | linear floor |",
            "|---|---|" + "---|" * (len(names) + 3)]
    for (data, horizon), published in PUBLISHED.items():
        best = BEST_PUBLISHED_MSE[(data, horizon)]
        cells = defaults[(defaults.dataset == data) & (defaults.horizon == horizon)]

        def text(cell: pd.DataFrame, best: float = best) -> str:
            old = "" if (cell.recipe == RECIPE).all() else " ¹"
            if cell.start_kept.all():
                return "start" + old
            mse = cell.mse.mean()
            return (f"**{mse:.3f}**" if round(mse, 3) <= best else f"{mse:.3f}") + old

        texts = per_backbone(cells, names, text)
        start = linear_start(cells)
        rows.append(f"| {data} | {horizon} | {' | '.join(texts)} | "
                    f"{'' if pd.isna(start) else f'{start:.3f}'} | {best:.3f} | "
                    f"{published[2].split(' / ')[0]} |")
    return "\n".join(rows)


def per_backbone(cells: pd.DataFrame, names: list[str], text) -> list[str]:
    """`text(rows)` of each backbone's rows among `cells`, in the order of `names` ('' if none)."""
    return [text(cells[cells.backbone == name]) if (cells.backbone == name).any() else ""
            for name in names]


def default_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Every backbone's rows at its defaults (`at_defaults`), each cell's newest recipe only."""
    defaults = pd.concat([at_defaults(results[results.backbone == name], name)
                          for name in results.backbone.unique()])
    newest = defaults.groupby(["dataset", "horizon", "backbone"]).recipe.transform("max")
    return defaults[defaults.recipe == newest]


def linear_start(cell: pd.DataFrame) -> float:
    """The test MSE of a cell's linear start (the same closed form for every backbone at the
    defaults): recorded beside each newer row, or the MSE of a row that kept it; NaN if none."""
    recorded = cell.linear_start_mse.dropna()
    if len(recorded):
        return float(recorded.astype(float).mean())
    kept = cell[cell.start_kept & cell.ridge_init]
    return float(kept.mse.mean()) if len(kept) else float("nan")


def deep_part_summary(results: pd.DataFrame) -> str:
    """One line: in how many default cells the deep part beat the linear start it began from."""
    defaults = default_rows(results[(results.setting == "M")
                                    & results.dataset.str.startswith("ETT")])
    started = defaults[defaults.ridge_init]
    cells = started.groupby(["dataset", "horizon", "backbone"])
    improved = sum(not cell.start_kept.all() and not (cell.mse.mean() >= linear_start(cell))
                   for _, cell in cells)
    return (f"The deep part improved on the linear start it began from in **{improved} of the "
            f"{cells.ngroups} default ETT cells** started there (kept by validation and, where the "
            "start's test MSE is known, lower on test); in the others the number is the linear "
            "start's.")


def render_ili(results: pd.DataFrame, ridge_init: bool = True) -> str:
    """MSE per backbone and ILI horizon under the newest recipe run from that start (mean ± std
    over seeds, bold at or below PatchTST/64; the table's first line names the recipe), beside
    the linear start, the floor and the published numbers; the fits from the ridge start (the
    default) or from random weights (`ridge_init=False`)."""
    rows = results[(results.lookback == 104) & (results.ridge_init.astype(str) == str(ridge_init))]
    recipe = rows.recipe.max()
    rows = rows[rows.recipe == recipe]
    names = sorted(rows.backbone.unique())
    lines = [f"Recipe {recipe}{'' if recipe == RECIPE else ' (not re-run under ' + RECIPE + ')'}"
             f", {len(rows)} runs:", "",
             f"| H | {' | '.join(names)} | linear start | linear floor | PatchTST/64 | "
             "PatchTST/42 | DLinear |", "|---|" + "---|" * (len(names) + 5)]
    for horizon in sorted(rows.horizon.unique()):
        cells = rows[rows.horizon == horizon]
        patch64 = ILI_PUBLISHED["PatchTST/64"].get(("national_illness", horizon), (float("nan"),))[0]

        def text(cell: pd.DataFrame, patch64: float = patch64) -> str:
            mse, kept = cell.mse.mean(), int(cell.start_kept.sum())
            value = f"{mse:.3f}" + (f" ± {cell.mse.std():.3f}" if len(cell) > 1 else "")
            return ((f"**{value}**" if round(mse, 3) <= patch64 else value)
                    + (f" ({kept} kept)" if kept else ""))

        texts = per_backbone(cells, names, text)
        published = [ILI_PUBLISHED[m].get(("national_illness", horizon), (float("nan"),))[0]
                     for m in ("linear floor", "PatchTST/64", "PatchTST/42", "DLinear")]
        lines.append(f"| {horizon} | {' | '.join(texts)} | {linear_start(cells):.3f} | "
                     + " | ".join(f"{value:.3f}" for value in published) + " |")
    return "\n".join(lines)


def at_defaults(rows: pd.DataFrame, backbone: str) -> pd.DataFrame:
    """The rows of one backbone whose cell (`accuracy.key`) stays the same when every choice is
    set to `Forecaster(backbone)`'s own under the row's recipe."""
    from accuracy import default_choices, key  # imports torch and tsk: only when a table needs it

    defaults = {recipe: default_choices(backbone, recipe) for recipe in rows.recipe.unique()}
    return rows[[key(row) == key({**row, **defaults[row["recipe"]]})
                 for row in rows.to_dict("records")]]


def best_published_summary(results: pd.DataFrame) -> str:
    """How many ETT cells tsk's best row (mean over seeds) is at or below the best published MSE,
    both to the 3 decimals the papers print."""
    multivariate = results[(results.setting == "M") & results.dataset.str.startswith("ETT")]
    means = multivariate.groupby(CELL).mse.mean()
    best = means.groupby(level=["dataset", "horizon"]).min()
    wins = [f"{d}-{h}" for (d, h), mse in best.items() if round(mse, 3) <= BEST_PUBLISHED_MSE[(d, h)]]
    return (f"tsk's best row is at or below the best published MSE (PatchTST/64, PatchTST/42, "
            f"DLinear) in **{len(wins)} of the {len(best)} ETT cells run** (of 16): "
            f"{', '.join(wins) or 'none'}.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = read_results(args.results)
    # the machines themselves: a note in brackets (where a row's other epochs ran) is 'run on''s
    machines = results.assign(machine=results.machine.str.replace(r" \(.*\)$", "", regex=True))
    intro = (
        "Produced by `benchmarks/accuracy.py` on "
        + " and ".join(f"{m} ({c} CPUs)" for m, c in machines[["machine", "cpus"]].drop_duplicates()
                       .itertuples(index=False))
        + f" ('run on' says which), torch {results.torch.iloc[-1]}, dates {results.date.min()} "
        f"to {results.date.max()}. MSE/MAE on standardized data. 'vs floor' compares MSE with the "
        "closed-form ridge floor of benchmarks/anchors.csv (lookback 336). 'start': random weights, or the "
        "closed-form ridge start of the forecasting head ('kept' when no epoch beat it)."
    )
    table = ("At the defaults, MSE per backbone (bold: at or below the best published MSE; "
             "'start': no validation beat the closed-form linear start, so the fit kept it and "
             "the number is the linear start's, in its column; ¹: measured under an earlier "
             f"training recipe than the current one ({RECIPE}), see benchmarks/README.md):\n\n"
             + render_defaults(results) + "\n\n" + deep_part_summary(results)
             + "\n\nEvery run:\n\n" + render(results) + "\n\n" + best_published_summary(results))
    out = args.results.with_suffix(".md")
    text = ("# Forecasting accuracy (TSLib protocol, multivariate, all test windows)\n\n"
            f"{intro}\n\n{table}\n")
    univariate = results[(results.setting == "S") & (results.protocol.fillna("tslib") == "tslib")]
    if len(univariate):
        text += ("\n## Univariate (S: OT in and out), TSLib borders\n\n"
                 "SpaceTime's main setting (lookback 336); NLinear's numbers from benchmarks/anchors.csv.\n\n"
                 f"{render_vs_reference(univariate, NLINEAR_S, 'NLinear', 3)}\n")
    if TPGN_RESULTS.is_file():
        tpgn = render_vs_reference(read_results(TPGN_RESULTS), TPGN_PAPER, "paper", 4)
        text += ("\n## TPGN's own protocol (univariate OT, 60/20/20 of the file, lookback 168)\n\n"
                 f"From `{TPGN_RESULTS.name}`; paper numbers from benchmarks/anchors.csv. The authors' "
                 "per-task settings (their README's table of hyperparameters): ETTh1 d_model 2 "
                 "(8 at 1440) with RevIN, ETTh2 d_model 8 without. tsk's defaults: d_model 8, RevIN "
                 f"on, calendar inputs.\n\n{tpgn}\n")
    smamba = results[(results.backbone == "mamba") & (results.tokens == "variates")
                     & (results.lookback == 96)]
    if len(smamba):
        text += ("\n## Mamba in S-Mamba's setting (variates as tokens, lookback 96)\n\n"
                 "S-Mamba's scripts' settings (d_state 2, d_conv 2, expand 1, two bidirectional "
                 "layers with a feed-forward sublayer, calendar features as tokens, batch 32, its "
                 "step size per cell) in tsk's pre-norm RMSNorm stack, run before the paper's own "
                 "post-norm LayerNorm layer existed (`layout=\"s-mamba\"`: the rows that name it); "
                 "paper numbers from its ETT table.\n\n"
                 f"{render_vs_reference(smamba, SMAMBA_PAPER, 'paper', 3)}\n")
    if ILI_RESULTS.is_file():
        text += ("\n## ILI (TSLib 70/10/20, all 7 channels, lookback 104)\n\n"
                 f"From `{ILI_RESULTS.name}` (`accuracy.py --datasets national_illness --lookback "
                 "104 --batch-size 32 --max-epochs 20`), mean ± std over seeds at each backbone's "
                 "defaults otherwise; 'linear start': the test MSE of the closed-form start every "
                 "generic-head fit begins from (the same for every backbone); 'kept': runs whose "
                 "fit kept that start. Published: PatchTST paper, Table 3.\n\n"
                 f"{render_ili(read_results(ILI_RESULTS))}\n\n"
                 "The same fits from random weights (`--ridge-start off`, `ridge_init=False`): "
                 "the 'linear start' column is then the baseline the fit also solves, not where "
                 "it began.\n\n"
                 f"{render_ili(read_results(ILI_RESULTS), ridge_init=False)}\n")
    out.write_text(text)
    write_all_results()
    print(table)
    return 0


def write_all_results() -> None:
    """RESULTS.md: every generated results page, one after another, headings one level down."""
    parts = ["# tsk benchmark results", "",
             "Every table the benchmark scripts produced, gathered by `benchmarks/report.py`; "
             "the protocols are in `benchmarks/README.md`, the published numbers compared against "
             "(with their sources) in `benchmarks/anchors.csv`.", ""]
    for name in PAGES:
        page = RESULTS.parent / f"{name}.md"
        if page.is_file():
            lines = page.read_text().splitlines()
            parts += [("#" + line) if line.startswith("#") else line for line in lines] + [""]
    ALL_RESULTS.write_text("\n".join(parts))


if __name__ == "__main__":
    sys.exit(main())
