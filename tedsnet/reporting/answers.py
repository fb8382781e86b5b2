"""The reproduction questions of a run, answered from its numbers beside the paper's (sections of report.md).

Questions: does TEDS-Net keep 100 % correct topology? do the U-Nets lose some once past the guard? do
A1-A3 show non-positive Jacobians and topology errors while A4-A6 and TEDS-Net show none? where do Dice and HD
land against the paper? how much of the gap is the reduced training budget (validation Dice against epochs)?
Then, for the topology-aware baselines: does any match TEDS-Net's topology, and at what Dice and HD? does
post-processing alone close the U-Net's topology gap, and at what cost? and how much of the Dice gap to the paper
closes with a 12-epoch budget? Topology is compared as the share of test cases with incorrect topology (the rows
may have different numbers of seeds). Every sentence is computed from the tables given; nothing is asserted that
the numbers do not show.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

from tedsnet.experiments import EXPERIMENTS
from tedsnet.reporting.intervals import SEED_MEAN
from tedsnet.reporting.labels import row_label, summary_labels
from tedsnet.reporting.paper import DIFFEOMORPHIC_ROWS, FOLDING_ROWS, PAPER_EPOCHS, paper_rows
from tedsnet.reporting.table1 import markdown_table

__all__ = [
    "BUDGET_VARIANTS",
    "STILL_RISING",
    "TOPOLOGY_BASELINES",
    "answer_budget12",
    "answer_postprocess",
    "answer_questions",
    "answer_topology_across_seeds",
    "answer_topology_baselines",
    "budget_table",
    "jacobian_pattern",
    "patient_test_text",
]

#: A rise of the last epoch's validation Dice above this is read as "still improving".
STILL_RISING = 0.005

#: The topology-aware baselines set against TEDS-Net, in the order the report lists them (those run).
TOPOLOGY_BASELINES: tuple[str, ...] = ("unet_post", "unet_cldice", "unet_topo", "unet_bettimatch")

#: A row -> the same row trained for 12 epochs.
BUDGET_VARIANTS: dict[str, str] = {"tedsnet": "tedsnet_epochs12", "unet": "unet_epochs12"}

#: (U-Net row, TEDS-Net row of the same budget) whose incorrect-topology rates are compared seed by seed.
SEED_PAIRS: tuple[tuple[str, str], ...] = (("unet", "tedsnet"), ("unet_epochs12", "tedsnet_epochs12"))


def _by_experiment(summary: pd.DataFrame) -> dict[str, pd.Series]:
    return {str(r["experiment"]): r for _, r in summary.iterrows()}


def _folds(row: pd.Series | None) -> float:
    """Largest mean % of non-positive Jacobian determinants over the row's fields (NaN: no field)."""
    if row is None:
        return math.nan
    values = [float(row.get(k, math.nan)) for k in ("nonpos_jac_bulk_pct_mean", "nonpos_jac_ft_pct_mean")]
    values = [v for v in values if np.isfinite(v)]
    return max(values) if values else math.nan


def _yes_no(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    return "yes" if value > 0 else "no"


def jacobian_pattern(summary: pd.DataFrame, paper: pd.DataFrame | None) -> pd.DataFrame:
    """Per ablation row and TEDS-Net: folds (any % non-positive Jacobian > 0) and topology errors, ours and paper's.

    Returns
    -------
    DataFrame
        experiment, label, folds_pct (ours, largest field mean), folds, topology_errors (n), n_test,
        paper_folds_pct, paper_folds, paper_topology_errors, agrees (both "any folds" and "any topology error"
        match the paper; None when a side is missing).
    """
    ours, theirs = _by_experiment(summary), paper_rows(paper)
    labels = summary_labels(summary)
    rows = []
    for e in (*FOLDING_ROWS, *DIFFEOMORPHIC_ROWS):
        o, p = ours.get(e), theirs.get(e)
        if o is None:
            continue
        folds, p_folds = _folds(o), _folds(p)
        topo = int(o["incorrect_topology"])
        p_topo = None if p is None else int(p["incorrect_topology"])
        agrees = None
        if p is not None and np.isfinite(folds) and np.isfinite(p_folds):
            agrees = bool((folds > 0) == (p_folds > 0) and (topo > 0) == (p_topo > 0))
        rows.append(
            {
                "experiment": e,
                "label": labels[e],
                "folds_pct": folds,
                "folds": _yes_no(folds),
                "topology_errors": topo,
                "n_test": int(o["n_test"]),
                "paper_folds_pct": p_folds,
                "paper_folds": _yes_no(p_folds),
                "paper_topology_errors": p_topo,
                "agrees": agrees,
            }
        )
    return pd.DataFrame(rows)


def budget_table(curves: pd.DataFrame, paper_epochs: int = PAPER_EPOCHS) -> pd.DataFrame:
    """Validation Dice against epochs and the share of the paper's image-steps, per trained model (seed-averaged).

    Parameters
    ----------
    curves : DataFrame
        learning_curves.csv (experiment, seed, epoch, images_seen, val_dice).
    paper_epochs : int
        The paper's epochs; its image-steps are ``paper_epochs`` x the images of one of our epochs.

    Returns
    -------
    DataFrame
        experiment, label, epochs, images_seen, paper_fraction, val_dice_by_epoch (list), last_gain (val Dice of
        the last epoch minus the one before; NaN with one epoch), still_rising (bool).
    """
    rows = []
    trained = curves[curves["epoch"] > 0]
    for experiment, group in trained.groupby("experiment", sort=False):
        by_epoch = group.groupby("epoch")[["val_dice", "images_seen"]].mean().sort_index()
        dice = by_epoch["val_dice"].tolist()
        per_epoch = float(by_epoch["images_seen"].iloc[0])
        images = float(by_epoch["images_seen"].iloc[-1])
        gain = dice[-1] - dice[-2] if len(dice) > 1 else math.nan
        rows.append(
            {
                "experiment": str(experiment),
                "label": row_label(str(experiment)),
                "epochs": int(by_epoch.index[-1]),
                "images_seen": images,
                "paper_fraction": images / (paper_epochs * per_epoch) if per_epoch > 0 else math.nan,
                "val_dice_by_epoch": dice,
                "last_gain": gain,
                "still_rising": bool(np.isfinite(gain) and gain > STILL_RISING),
            }
        )
    return pd.DataFrame(rows)


def _count(n: int, total: int) -> str:
    return f"{n}/{total}"


def _answer_tedsnet_topology(ours: dict[str, pd.Series], passing: Collection[str]) -> str:
    """Does TEDS-Net keep 100 % correct topology? No conclusion when it is below the under-training guard."""
    question = "**Does TEDS-Net keep 100 % correct topology?** "
    teds = ours.get("tedsnet")
    if teds is None:
        return question + "Not run.\n"
    n, total = int(teds["incorrect_topology"]), int(teds["n_test"])
    counts = f"{_count(n, total)} test slices with incorrect topology (paper 0/100), mean Dice {teds['dice_mean']:.3f}"
    if "tedsnet" not in passing:
        return question + f"No conclusion: TEDS-Net is **below the under-training guard** ({counts}).\n"
    return question + f"{'Yes' if n == 0 else 'No'}: {counts}, past the guard.\n"


def _answer_unet_topology(
    ours: dict[str, pd.Series], theirs: dict[str, pd.Series], labels: dict[str, str], passing: Collection[str]
) -> str:
    """Do the U-Nets lose some topologies once past the guard? Each U-Net's count with its guard state."""
    parts = []
    for e in ("unet", "unet_smp"):
        o = ours.get(e)
        if o is None:
            continue
        n, total = int(o["incorrect_topology"]), int(o["n_test"])
        state = "past the guard" if e in passing else "below the guard, so this says nothing about topology"
        parts.append(f"{labels[e]}: {_count(n, total)} incorrect at mean Dice {o['dice_mean']:.3f} ({state})")
    p_unet = theirs.get("unet")
    if p_unet is not None:
        parts.append(f"paper U-Net: {int(p_unet['incorrect_topology'])}/{int(p_unet['n_test'])}")
    answer = ("; ".join(parts) + ".\n") if parts else "Not run.\n"
    return "\n**Do the U-Nets lose some topologies once trained past the guard?** " + answer


def _pattern_table(pattern: pd.DataFrame) -> str:
    """The Jacobian pattern, ours beside the paper's, as Markdown."""

    def percent(v: float) -> str:
        return f"{v:.2f}" if np.isfinite(v) else "—"

    def paper_count(v: float | None) -> str:
        return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{int(v)}/100"

    table = pd.DataFrame(
        {
            "Model": pattern["label"],
            "max % |J| <= 0 (ours)": pattern["folds_pct"].map(percent),
            "max % |J| <= 0 (paper)": pattern["paper_folds_pct"].map(percent),
            "Incorrect topology (ours)": [
                _count(int(a), int(b))
                for a, b in zip(pattern["topology_errors"], pattern["n_test"], strict=True)
            ],
            "Incorrect topology (paper)": pattern["paper_topology_errors"].map(paper_count),
            "As the paper's row": pattern["agrees"].map({True: "yes", False: "no", None: "—"}),
        }
    )
    return markdown_table(table)


def _answer_jacobian_pattern(summary: pd.DataFrame, paper: pd.DataFrame | None) -> list[str]:
    """Do A1-A3 fold and lose topology while A4-A6 and TEDS-Net do not? Each row against the paper's pattern."""
    out = [
        "\n**Do A1-A3 show non-positive Jacobians and topology errors while A4-A6 and TEDS-Net show none?** "
    ]
    pattern = jacobian_pattern(summary, paper)
    if pattern.empty:
        return [*out, "No ablation row in this run.\n"]
    expected = pattern.assign(
        expected=pattern["experiment"].map(lambda e: "yes" if e in FOLDING_ROWS else "no")
    )
    shown = [
        f"{r['label']}: folds {r['folds']} ({r['folds_pct']:.2f} %), topology errors "
        f"{_count(int(r['topology_errors']), int(r['n_test']))}"
        for _, r in expected.iterrows()
    ]
    match = expected.apply(
        lambda r: (r["folds"] == r["expected"]) and ((r["topology_errors"] > 0) == (r["expected"] == "yes")),
        axis=1,
    )
    agreeing = expected.loc[match, "label"].tolist()
    differing = expected.loc[~match, "label"].tolist()
    return [
        *out,
        "; ".join(shown) + ". ",
        f"As the paper's pattern predicts (folds and errors in A1-A3, neither in A4-A6 and TEDS-Net): "
        f"{', '.join(agreeing) or 'none'}; otherwise: {', '.join(differing) or 'none'}.\n",
        "\n" + _pattern_table(pattern),
        "As the paper's row: folds yes/no and topology errors yes/no both as in the paper's own numbers (any "
        "value above 0 counts, so a trace such as the paper's 0.03 % for A5 counts as folding), whereas the "
        "sentence above holds each row to the pattern the paper's text states.\n",
    ]


def _answer_dice_hd(ours: dict[str, pd.Series], theirs: dict[str, pd.Series], labels: dict[str, str]) -> str:
    """Where do Dice and HD land against the paper? Ours beside the paper's, per row the paper has."""
    lines = []
    for e, o in ours.items():
        p = theirs.get(e)
        if p is None:
            continue
        hd = f"{o['hd_px_mean']:.2f} px" if np.isfinite(o["hd_px_mean"]) else "N/A (every prediction empty)"
        lines.append(
            f"{labels[e]}: Dice {o['dice_mean']:.3f} vs {float(p['dice_mean']):.2f} "
            f"({o['dice_mean'] - float(p['dice_mean']):+.3f}), HD {hd} vs {float(p['hd_mean']):.2f}"
        )
    answer = ("; ".join(lines) + ". (The paper does not state HD's unit.)\n") if lines else "No paper row.\n"
    return "\n**Where do Dice and HD land against the paper?** " + answer


def _budget_markdown(budget: pd.DataFrame) -> str:
    """Validation Dice against epochs and the share of the paper's image-steps, as Markdown."""
    table = pd.DataFrame(
        {
            "Model": budget["label"],
            "Epochs": budget["epochs"].astype(str),
            "Image-steps": budget["images_seen"].map(lambda v: f"{v:,.0f}"),
            "Share of paper": budget["paper_fraction"].map(lambda v: f"{v:.2%}"),
            "Val Dice by epoch": budget["val_dice_by_epoch"].map(lambda d: " → ".join(f"{v:.3f}" for v in d)),
            "Last gain": budget["last_gain"].map(lambda v: f"{v:+.3f}" if np.isfinite(v) else "—"),
        }
    )
    return markdown_table(table)


def _answer_budget(curves: pd.DataFrame | None, paper_epochs: int) -> list[str]:
    """How much of the gap is the reduced budget? The share of the paper's training and who was still rising."""
    out = ["\n**How much of the gap is the reduced budget?** "]
    budget = budget_table(curves, paper_epochs) if curves is not None and len(curves) else pd.DataFrame()
    if budget.empty:
        return [*out, "No learning curves.\n"]
    rising = budget.loc[budget["still_rising"], "label"].tolist()
    fraction = budget["paper_fraction"]
    return [
        *out,
        f"Each model saw {fraction.min():.1%}-{fraction.max():.1%} of the paper's image-steps "
        f"({paper_epochs} epochs). Validation Dice was still rising at the last epoch (gain > {STILL_RISING}) "
        f"for: {', '.join(rising) or 'none'}; a model still rising would gain more from the paper's budget, "
        "so its gap to the paper is at least partly the budget.\n",
        "\n" + _budget_markdown(budget),
    ]


def answer_questions(
    summary: pd.DataFrame,
    paper: pd.DataFrame | None,
    curves: pd.DataFrame | None,
    passing: Collection[str],
    paper_epochs: int = PAPER_EPOCHS,
) -> str:
    """Markdown answering the reproduction questions from this run's Table 1, the paper's and the learning curves.

    Parameters
    ----------
    summary : DataFrame
        Table 1 summary (experiment, dice_mean, hd_px_mean, nonpos_jac_*_pct_mean, incorrect_topology, n_test;
        label optional).
    paper : DataFrame or None
        The paper's Table 1 (:data:`tedsnet.reporting.paper.PAPER_TABLE1_COLUMNS`).
    curves : DataFrame or None
        learning_curves.csv (experiment, seed, epoch, images_seen, val_dice).
    passing : collection of str
        Experiments past the under-training guard (:meth:`tedsnet.reporting.verdict.Verdict.passing`); a row
        below it gets no topology conclusion.
    paper_epochs : int
        The paper's epochs.

    Returns
    -------
    str
        One bold question per paragraph, each followed by its answer (and a table where one helps).
    """
    ours, theirs = _by_experiment(summary), paper_rows(paper)
    labels = summary_labels(summary)
    out = [
        _answer_tedsnet_topology(ours, passing),
        _answer_unet_topology(ours, theirs, labels, passing),
        *_answer_jacobian_pattern(summary, paper),
        _answer_dice_hd(ours, theirs, labels),
        *_answer_budget(curves, paper_epochs),
    ]
    return "".join(out)


def _rate(row: pd.Series) -> float:
    """Share of the row's test cases with incorrect topology."""
    return float(row["incorrect_topology"]) / max(float(row["n_test"]), 1.0)


def _p_text(value: float) -> str:
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def patient_test_text(tests: pd.DataFrame | None, experiment: str, reference: str, metric: str) -> str:
    """``"patient-level Wilcoxon p = 0.002, n = 10 patients"`` for a pair, or the reason there is none.

    Parameters
    ----------
    tests : DataFrame or None
        Patient-level tests: experiment, reference, metric, n_patients, p_wilcoxon, p_ttest
        (:func:`tedsnet.reporting.stats.patient_tests_from_stats` layout); a pair is found in either order.
    experiment, reference : str
        The two rows.
    metric : str
        Per-case metric column (``"dice"``, ``"hd_mm"``).

    Returns
    -------
    str
        The Wilcoxon signed-rank p (the paired t-test's when the Wilcoxon's is NaN) with the patients used;
        ``"no patient-level test"`` when the table has no such pair or both p are NaN.
    """
    if tests is None or not len(tests):
        return "no patient-level test"
    pair = tests[
        (tests["metric"] == metric)
        & (
            ((tests["experiment"] == experiment) & (tests["reference"] == reference))
            | ((tests["experiment"] == reference) & (tests["reference"] == experiment))
        )
    ]
    if not len(pair):
        return "no patient-level test"
    row = pair.iloc[0]
    n = float(row["n_patients"])
    patients = f", n = {int(n)} patients" if np.isfinite(n) else ""
    for column, name in (("p_wilcoxon", "Wilcoxon"), ("p_ttest", "paired t-test")):
        value = float(row[column])
        if np.isfinite(value):
            return f"patient-level {name} p = {_p_text(value)}{patients}"
    return "no patient-level test"


def _hd_mm(row: pd.Series) -> str:
    value = float(row.get("hd_mm_mean", math.nan))
    return f"{value:.2f} mm" if np.isfinite(value) else "N/A"


def _against(row: pd.Series, other: pd.Series, tests: pd.DataFrame | None, names: tuple[str, str]) -> str:
    """One row's topology, Dice and HD against another's, with the patient-level tests of Dice and HD."""
    label, other_label = names
    e, o = str(row["experiment"]), str(other["experiment"])
    return (
        f"{label}: {_count(int(row['incorrect_topology']), int(row['n_test']))} incorrect against "
        f"{other_label}'s {_count(int(other['incorrect_topology']), int(other['n_test']))}, Dice "
        f"{row['dice_mean']:.3f} vs {other['dice_mean']:.3f} ({patient_test_text(tests, e, o, 'dice')}), HD "
        f"{_hd_mm(row)} vs {_hd_mm(other)} ({patient_test_text(tests, e, o, 'hd_mm')})"
    )


def answer_topology_baselines(
    summary: pd.DataFrame, tests: pd.DataFrame | None, passing: Collection[str]
) -> str:
    """Does any topology-aware baseline match TEDS-Net's topology, and at what Dice and HD?

    Parameters
    ----------
    summary : DataFrame
        Table 1 summary (experiment, dice_mean, hd_mm_mean, incorrect_topology, n_test; label optional).
    tests : DataFrame or None
        Patient-level tests (see :func:`patient_test_text`).
    passing : collection of str
        Rows past the under-training guard; a baseline below it is named and left out.

    Returns
    -------
    str
        One bold question and its answer: each of :data:`TOPOLOGY_BASELINES` past the guard whose share of
        incorrect topologies is at most TEDS-Net's, with its Dice and HD against TEDS-Net's; else the closest one.
    """
    question = "**Does any topology-aware baseline match TEDS-Net's topology, and at what Dice and HD?** "
    ours, labels = _by_experiment(summary), summary_labels(summary)
    teds = ours.get("tedsnet")
    present = [b for b in TOPOLOGY_BASELINES if b in ours]
    if teds is None or not present:
        return (
            question + "Not answerable: TEDS-Net or every topology-aware baseline is missing from this run.\n"
        )
    excluded = [labels[b] for b in present if b not in passing]
    note = f" Below the under-training guard, left out: {', '.join(excluded)}." if excluded else ""
    usable = [b for b in present if b in passing]
    if not usable:
        return question + "No baseline passes the under-training guard." + note + "\n"
    matching = [b for b in usable if _rate(ours[b]) <= _rate(teds)]
    shown = matching or [min(usable, key=lambda b: _rate(ours[b]))]
    details = "; ".join(_against(ours[b], teds, tests, (labels[b], labels["tedsnet"])) for b in shown)
    if matching:
        head = f"Yes: {', '.join(labels[b] for b in matching)} (as few incorrect topologies or fewer). "
    else:
        head = "No: every baseline past the guard has a larger share of incorrect topologies; the closest is "
    return question + head + details + "." + note + "\n"


def _gap_closed(plain: float, treated: float, target: float) -> str:
    """How much of the share-of-incorrect-topology gap between ``plain`` and ``target`` ``treated`` closes."""
    if plain <= target:
        return "the plain U-Net has no topology gap to TEDS-Net to close"
    if treated <= target:
        return "it closes the topology gap to TEDS-Net fully"
    closed = (plain - treated) / (plain - target)
    return (
        f"it closes {closed:.0%} of the topology gap to TEDS-Net"
        if closed > 0
        else "it does not close the gap"
    )


def answer_postprocess(
    summary: pd.DataFrame, tests: pd.DataFrame | None, passing: Collection[str], settings: Mapping[str, Any]
) -> str:
    """Does post-processing alone close the U-Net's topology gap to TEDS-Net, and at what Dice and HD cost?

    Parameters
    ----------
    summary, tests, passing
        As :func:`answer_topology_baselines`.
    settings : mapping
        The post-processing's parameters (the config's ``postprocess``), stated in the answer.

    Returns
    -------
    str
        One bold question and its answer (``unet_post`` against ``unet`` and ``tedsnet``); "Not run." without them.
    """
    question = "\n**Does post-processing alone close the topology gap, and at what cost in Dice and HD?** "
    ours, labels = _by_experiment(summary), summary_labels(summary)
    if not all(e in ours for e in ("unet_post", "unet", "tedsnet")):
        return question + "Not run (needs U-Net + post-processing, the plain U-Net and TEDS-Net).\n"
    post, unet, teds = ours["unet_post"], ours["unet"], ours["tedsnet"]
    registered = EXPERIMENTS.get("unet_post")
    method = registered.description if registered is not None and registered.description else ""
    stated = ", ".join(f"{k} = {v}" for k, v in settings.items()) or "the registry's defaults"
    guard = "" if "unet_post" in passing else " It is below the under-training guard, so this says nothing."
    return (
        question + f"{method} Parameters (config `postprocess`): {stated}. {labels['unet_post']} has "
        f"{_count(int(post['incorrect_topology']), int(post['n_test']))} incorrect topologies against "
        f"{_count(int(unet['incorrect_topology']), int(unet['n_test']))} for {labels['unet']} and "
        f"{_count(int(teds['incorrect_topology']), int(teds['n_test']))} for {labels['tedsnet']}: "
        f"{_gap_closed(_rate(unet), _rate(post), _rate(teds))}. Cost against {labels['unet']}: Dice "
        f"{post['dice_mean'] - unet['dice_mean']:+.3f} ({unet['dice_mean']:.3f} → {post['dice_mean']:.3f}; "
        f"{patient_test_text(tests, 'unet_post', 'unet', 'dice')}), HD {_hd_mm(unet)} → {_hd_mm(post)} "
        f"({patient_test_text(tests, 'unet_post', 'unet', 'hd_mm')}).{guard}\n"
    )


def _interval_cell(
    intervals: pd.DataFrame | None, experiment: str, seed: str, metric: str
) -> pd.Series | None:
    """The both-phases bootstrap row of one experiment, seed (or :data:`SEED_MEAN`) and metric; None if absent."""
    if intervals is None or not len(intervals):
        return None
    hit = intervals[
        (intervals["experiment"].astype(str) == experiment)
        & (intervals["seed"].astype(str) == seed)
        & (intervals["phase"].astype(str) == "both")
        & (intervals["metric"].astype(str) == metric)
    ]
    return None if hit.empty else hit.iloc[0]


def _bracket(cell: pd.Series | None, scale: float = 1.0, decimals: int = 3) -> str:
    """`` [low, high]`` of a bootstrap row, scaled; empty without one."""
    if cell is None or not np.isfinite(float(cell["ci_low"])):
        return ""
    return f" [{float(cell['ci_low']) * scale:.{decimals}f}, {float(cell['ci_high']) * scale:.{decimals}f}]"


def _budget_sentence(
    base: pd.Series,
    variant: pd.Series,
    paper_dice: float,
    epochs: Mapping[str, float],
    intervals: pd.DataFrame | None = None,
) -> str:
    """How much of one row's Dice gap to the paper its 12-epoch variant closes, with patient intervals if given."""
    e, v = str(base["experiment"]), str(variant["experiment"])
    span = ""
    if e in epochs and v in epochs:
        span = f" ({epochs[e]:g} → {epochs[v]:g} epochs)"
    dice, longer = float(base["dice_mean"]), float(variant["dice_mean"])
    ci_base = _bracket(_interval_cell(intervals, e, SEED_MEAN, "dice"))
    ci_longer = _bracket(_interval_cell(intervals, v, SEED_MEAN, "dice"))
    head = f"{row_label(e)}: Dice {dice:.3f}{ci_base} → {longer:.3f}{ci_longer}{span}, paper {paper_dice:.2f}"
    gap = paper_dice - dice
    if gap <= 0:
        return head + ": already at or above the paper's Dice with the shorter budget"
    if longer >= paper_dice:
        return head + f": the longer budget closes the whole {gap:.3f} gap to the paper"
    return head + f": the longer budget closes {(longer - dice) / gap:.0%} of the {gap:.3f} gap to the paper"


def answer_budget12(
    summary: pd.DataFrame,
    paper: pd.DataFrame | None,
    epochs: Mapping[str, float] | None = None,
    intervals: pd.DataFrame | None = None,
) -> str:
    """How much of the Dice gap to the paper closes with the 12-epoch budget?

    Parameters
    ----------
    summary : DataFrame
        Table 1 summary (experiment, dice_mean).
    paper : DataFrame or None
        The paper's Table 1 (its Dice per row).
    epochs : mapping, optional
        Experiment -> epochs trained (mean over seeds), stated when known.
    intervals : DataFrame, optional
        Patient-bootstrap intervals (:func:`tedsnet.reporting.intervals.bootstrap_intervals`); each Dice is then
        followed by its 95 % interval (mean over seeds, both phases).

    Returns
    -------
    str
        One bold question and, for each pair of :data:`BUDGET_VARIANTS` run with a paper row, the share of the
        gap closed (negative: the longer budget did worse); "" when no pair was run.
    """
    ours, theirs = _by_experiment(summary), paper_rows(paper)
    parts = [
        _budget_sentence(ours[base], ours[variant], float(theirs[base]["dice_mean"]), epochs or {}, intervals)
        for base, variant in BUDGET_VARIANTS.items()
        if base in ours and variant in ours and base in theirs
    ]
    if not parts:
        return ""
    return (
        "\n**How much of the Dice gap to the paper closes with the 12-epoch budget?** "
        + "; ".join(parts)
        + ".\n"
    )


def _lacks_columns(intervals: pd.DataFrame) -> bool:
    """True when a bootstrap table lacks a column the seed-by-seed answer reads."""
    needed = ("experiment", "seed", "phase", "metric", "mean", "ci_low", "ci_high")
    return any(c not in intervals.columns for c in needed)


def _pair_over_seeds(intervals: pd.DataFrame, unet: str, teds: str) -> str:
    """One pair's incorrect-topology rates seed by seed, and in how many seeds the U-Net's is higher and apart."""

    def seeds(experiment: str) -> set[str]:
        return set(intervals.loc[intervals["experiment"].astype(str) == experiment, "seed"].astype(str))

    common = sorted((seeds(unet) & seeds(teds)) - {SEED_MEAN}, key=lambda s: (len(s), s))
    higher = apart = 0
    parts = []
    for seed in common:
        u = _interval_cell(intervals, unet, seed, "incorrect_topology")
        t = _interval_cell(intervals, teds, seed, "incorrect_topology")
        if u is None or t is None:
            continue
        higher += float(u["mean"]) > float(t["mean"])
        apart += float(u["ci_low"]) > float(t["ci_high"])
        parts.append(
            f"seed {seed} {100 * float(u['mean']):.0f} %{_bracket(u, 100, 0)} vs "
            f"{100 * float(t['mean']):.0f} %{_bracket(t, 100, 0)}"
        )
    if not parts:
        return ""
    return (
        f"{row_label(unet)} vs {row_label(teds)}: {'; '.join(parts)}. Higher for {row_label(unet)} in {higher} of "
        f"{len(parts)} seeds; its interval lies above {row_label(teds)}'s in {apart} of {len(parts)}"
    )


def answer_topology_across_seeds(intervals: pd.DataFrame | None) -> str:
    """Does the topology difference between the U-Net and TEDS-Net hold across seeds?

    Parameters
    ----------
    intervals : DataFrame or None
        Patient-bootstrap intervals with columns experiment, seed, phase, metric, mean, ci_low, ci_high
        (:func:`tedsnet.reporting.intervals.bootstrap_intervals`).

    Returns
    -------
    str
        One bold question and, for each pair of :data:`SEED_PAIRS` with a seed in common, each seed's share of
        test cases with incorrect topology (both phases) and its 95 % patient interval, with the number of seeds
        in which the U-Net's share is higher and in which its interval lies wholly above TEDS-Net's; "" when no
        pair shares a seed.

    Examples
    --------
    >>> rows = [(e, s, "both", "incorrect_topology", m, lo, hi) for e, s, m, lo, hi in [
    ...     ("unet", "0", 0.06, 0.0, 0.15), ("unet", "1", 0.1, 0.04, 0.2),
    ...     ("tedsnet", "0", 0.0, 0.0, 0.0), ("tedsnet", "1", 0.0, 0.0, 0.0)]]
    >>> frame = pd.DataFrame(rows, columns=["experiment", "seed", "phase", "metric", "mean", "ci_low", "ci_high"])
    >>> "Higher for U-Net (paper) in 2 of 2 seeds; its interval lies above TEDS-Net's in 1 of 2" in (
    ...     answer_topology_across_seeds(frame))
    True
    """
    if intervals is None or _lacks_columns(intervals):
        return ""
    parts = [text for u, t in SEED_PAIRS if (text := _pair_over_seeds(intervals, u, t))]
    if not parts:
        return ""
    return (
        "\n**Does the topology difference hold across seeds?** Share of test cases with incorrect topology, both "
        "phases, with its 95 % patient interval. " + ". ".join(parts) + ".\n"
    )
