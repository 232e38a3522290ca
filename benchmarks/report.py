"""Render benchmarks/results/accuracy.csv as markdown tables beside the published numbers of
../shared/ANCHORS.md: ETT multivariate with the closed-form linear floor, univariate (S) beside
NLinear, TPGN on its own protocol beside its paper, and Mamba in S-Mamba's setting beside the
S-Mamba paper (MSE / MAE).

    uv run python benchmarks/report.py            # writes benchmarks/results/accuracy.md
    uv run python benchmarks/report.py --readme   # and the table between README's markers
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).parent / "results" / "accuracy.csv"
TPGN_RESULTS = Path(__file__).parent / "results" / "accuracy_tpgn_protocol.csv"
README = Path(__file__).parents[1] / "README.md"
START, END = "<!-- accuracy table: start -->", "<!-- accuracy table: end -->"

# ANCHORS.md: PatchTST/64 (lookback 512), DLinear (336) and the ridge floor (336), M setting.
PUBLISHED = {
    ("ETTh1", 96): ("0.370 / 0.400", "0.375 / 0.399", "0.370 / 0.391"),
    ("ETTh1", 192): ("0.413 / 0.429", "0.405 / 0.416", "0.403 / 0.411"),
    ("ETTh1", 336): ("0.422 / 0.440", "0.439 / 0.443", "0.427 / 0.426"),
    ("ETTh1", 720): ("0.447 / 0.468", "0.472 / 0.490", "0.434 / 0.450"),
    ("ETTh2", 96): ("0.274 / 0.337", "0.289 / 0.353", "0.272 / 0.334"),
    ("ETTh2", 192): ("0.341 / 0.382", "0.383 / 0.418", "0.334 / 0.376"),
    ("ETTh2", 336): ("0.329 / 0.384", "0.448 / 0.465", "0.358 / 0.400"),
    ("ETTh2", 720): ("0.379 / 0.422", "0.605 / 0.551", "0.393 / 0.434"),
    ("ETTm1", 96): ("0.293 / 0.346", "0.299 / 0.343", "0.300 / 0.343"),
    ("ETTm1", 192): ("0.333 / 0.370", "0.335 / 0.365", "0.336 / 0.363"),
    ("ETTm1", 336): ("0.369 / 0.392", "0.369 / 0.386", "0.370 / 0.383"),
    ("ETTm1", 720): ("0.416 / 0.420", "0.425 / 0.421", "0.426 / 0.416"),
    ("ETTm2", 96): ("0.166 / 0.256", "0.167 / 0.260", "0.165 / 0.254"),
    ("ETTm2", 192): ("0.223 / 0.296", "0.224 / 0.303", "0.220 / 0.291"),
    ("ETTm2", 336): ("0.274 / 0.329", "0.281 / 0.342", "0.273 / 0.326"),
    ("ETTm2", 720): ("0.362 / 0.385", "0.397 / 0.421", "0.367 / 0.383"),
}

# ANCHORS.md: the best published MSE per cell, over PatchTST/64, PatchTST/42 and DLinear.
BEST_PUBLISHED_MSE = {
    ("ETTh1", 96): 0.370, ("ETTh1", 192): 0.405, ("ETTh1", 336): 0.422, ("ETTh1", 720): 0.447,
    ("ETTh2", 96): 0.274, ("ETTh2", 192): 0.339, ("ETTh2", 336): 0.329, ("ETTh2", 720): 0.379,
    ("ETTm1", 96): 0.290, ("ETTm1", 192): 0.332, ("ETTm1", 336): 0.366, ("ETTm1", 720): 0.416,
    ("ETTm2", 96): 0.165, ("ETTm2", 192): 0.220, ("ETTm2", 336): 0.274, ("ETTm2", 720): 0.362,
}


# ANCHORS.md: TPGN's own protocol (univariate OT, 60/20/20 of the file, lookback 168), MSE / MAE.
TPGN_PAPER = {
    ("ETTh1", 168): (0.1061, 0.2533), ("ETTh1", 336): (0.1110, 0.2625),
    ("ETTh1", 720): (0.1346, 0.2908), ("ETTh1", 1440): (0.1343, 0.2941),
    ("ETTh2", 168): (0.2174, 0.3623), ("ETTh2", 336): (0.2237, 0.3769),
    ("ETTh2", 720): (0.2356, 0.3898), ("ETTh2", 1440): (0.2514, 0.4070),
}


# S-Mamba (Wang et al., "Is Mamba Effective for Time Series Forecasting?", arXiv 2403.11144 v3 /
# Neurocomputing), its table of full ETT results: lookback 96, M setting, TSLib borders, MSE / MAE.
# Not in ANCHORS.md, which defers to the paper for them.
SMAMBA_PAPER = {
    ("ETTh1", 96): (0.386, 0.405), ("ETTh1", 192): (0.443, 0.437),
    ("ETTh1", 336): (0.489, 0.468), ("ETTh1", 720): (0.502, 0.489),
    ("ETTh2", 96): (0.296, 0.348), ("ETTh2", 192): (0.376, 0.396),
    ("ETTh2", 336): (0.424, 0.431), ("ETTh2", 720): (0.426, 0.444),
    ("ETTm1", 96): (0.333, 0.368), ("ETTm1", 192): (0.376, 0.390),
    ("ETTm1", 336): (0.408, 0.413), ("ETTm1", 720): (0.475, 0.448),
    ("ETTm2", 96): (0.179, 0.263), ("ETTm2", 192): (0.250, 0.309),
    ("ETTm2", 336): (0.312, 0.349), ("ETTm2", 720): (0.411, 0.406),
}


# ANCHORS.md: NLinear, univariate OT on ETTh1 under the TSLib borders (LTSF-Linear's file).
NLINEAR_S = {
    ("ETTh1", 96): (0.053, 0.177), ("ETTh1", 192): (0.069, 0.204),
    ("ETTh1", 336): (0.081, 0.226), ("ETTh1", 720): (0.080, 0.226),
}


def read_results(path: Path) -> pd.DataFrame:
    """A results CSV, with what rows from before a column existed meant filled in: random
    start, time-step tokens, window normalization (RevIN) on, no calendar inputs, no other
    backbone options."""
    results = pd.read_csv(path)
    return results.assign(ridge_init=results.ridge_init.fillna(False).astype(bool),
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
        "time_features", "instance_norm", "d_model", "backbone_kwargs"]


def render(results: pd.DataFrame) -> str:
    rows = [
        "| data | H | backbone | lookback | start | lr | tsk MSE / MAE | vs floor | epochs | s/epoch | "
        "run on | PatchTST/64 | DLinear | linear floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    grouped = results[results.setting == "M"].groupby(CELL)
    for (data, horizon, backbone, lookback, tokens, ridge_init, lr, calendar, norm, _, kwargs), cell \
            in grouped:
        backbone = backbone_label(backbone, kwargs)
        notes = [n for n, on in ((tokens, tokens != "time"), ("calendar", calendar),
                                 ("no RevIN", norm == "off")) if on]
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
    """One MSE per ETT cell and backbone at `Forecaster(backbone)`'s defaults (lookback 336; for
    the generic head: patches, the ridge start, lr 1e-4; a paper's own network as its paper; mean
    over seeds), beside the best published MSE and the floor. Bold: at or below the best
    published, to 3 decimals; k: the ridge start was kept."""
    defaults = pd.concat([at_defaults(results[results.backbone == name], name)
                          for name in results.backbone.unique()])
    names = sorted(defaults.backbone.unique())
    rows = [f"| data | H | {' | '.join(names)} | best published | linear floor |",
            "|---|---|" + "---|" * (len(names) + 2)]
    for (data, horizon), published in PUBLISHED.items():
        best, texts = BEST_PUBLISHED_MSE[(data, horizon)], []
        for name in names:
            cell = defaults[(defaults.dataset == data) & (defaults.horizon == horizon)
                            & (defaults.backbone == name)]
            if cell.empty:
                texts.append("")
                continue
            mse = cell.mse.mean()
            text = f"{mse:.3f}" + (" k" if cell.start_kept.all() else "")
            texts.append(f"**{text}**" if round(mse, 3) <= best else text)
        rows.append(f"| {data} | {horizon} | {' | '.join(texts)} | {best:.3f} | "
                    f"{published[2].split(' / ')[0]} |")
    return "\n".join(rows)


def at_defaults(rows: pd.DataFrame, backbone: str) -> pd.DataFrame:
    """The rows of one backbone whose cell (`accuracy.key`) stays the same when every choice is
    set to `Forecaster(backbone)`'s own."""
    from accuracy import default_choices, key  # imports torch and tsk: only when a table needs it

    defaults = default_choices(backbone)
    return rows[[key(row) == key({**row, **defaults}) for row in rows.to_dict("records")]]


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
    parser.add_argument("--readme", action="store_true", help="also update README.md's table")
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
        "closed-form ridge floor of ANCHORS.md (lookback 336). 'start': random weights, or the "
        "closed-form ridge start of the forecasting head ('kept' when no epoch beat it)."
    )
    table = ("At the defaults, MSE per backbone (bold: at or below the best published MSE; k: no "
             "epoch beat the closed-form ridge start, so it was kept and the row is that start's "
             "forecast):\n\n" + render_defaults(results) + "\n\nEvery run:\n\n" + render(results)
             + "\n\n" + best_published_summary(results))
    out = args.results.with_suffix(".md")
    text = ("# Forecasting accuracy (TSLib protocol, multivariate, all test windows)\n\n"
            f"{intro}\n\n{table}\n")
    univariate = results[(results.setting == "S") & (results.protocol.fillna("tslib") == "tslib")]
    if len(univariate):
        text += ("\n## Univariate (S: OT in and out), TSLib borders\n\n"
                 "SpaceTime's main setting (lookback 336); NLinear's numbers from ANCHORS.md.\n\n"
                 f"{render_vs_reference(univariate, NLINEAR_S, 'NLinear', 3)}\n")
    if TPGN_RESULTS.is_file():
        tpgn = render_vs_reference(read_results(TPGN_RESULTS), TPGN_PAPER, "paper", 4)
        text += ("\n## TPGN's own protocol (univariate OT, 60/20/20 of the file, lookback 168)\n\n"
                 f"From `{TPGN_RESULTS.name}`; paper numbers from ANCHORS.md. The authors' "
                 "per-task settings (their README's table of hyperparameters): ETTh1 d_model 2 "
                 "(8 at 1440) with RevIN, ETTh2 d_model 8 without. tsk's defaults: d_model 8, RevIN "
                 f"on, calendar inputs.\n\n{tpgn}\n")
    smamba = results[(results.backbone == "mamba") & (results.tokens == "variates")
                     & (results.lookback == 96)]
    if len(smamba):
        text += ("\n## Mamba in S-Mamba's setting (variates as tokens, lookback 96)\n\n"
                 "The S-Mamba layout and its scripts' settings (d_state 2, d_conv 2, expand 1, two "
                 "bidirectional layers with a feed-forward sublayer, calendar features as tokens, "
                 "batch 32, its step size per cell); paper numbers from its ETT table.\n\n"
                 f"{render_vs_reference(smamba, SMAMBA_PAPER, 'paper', 3)}\n")
    out.write_text(text)
    if args.readme:
        text = README.read_text()
        head, rest = text.split(START)
        _, tail = rest.split(END)
        README.write_text(f"{head}{START}\n{intro}\n\n{table}\n{END}{tail}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
