"""report.md: verdict, Table 1 beside the paper's and the follow-up's, topology-aware baselines, seeds and intervals,
tests, figures, learning curves, slice ledger, further evaluation sets and what was run (rule report).

Inputs beyond the Table 1 ones are optional: a key the rule does not give (or an empty table) leaves its section
to say what is missing."""

import os

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        import pandas as pd

        from tedsnet.io import write_text_atomic
        from tedsnet.reporting.provenance import file_fingerprints, package_versions, read_benchmarks
        from tedsnet.reporting.report import build_report
        from tedsnet.reporting.verdict import training_verdict

        config = snakemake.params.config
        summary = pd.read_csv(snakemake.input.table1)
        stats = pd.read_csv(snakemake.input.stats, keep_default_na=True)
        stats["note"] = stats["note"].astype(object).where(stats["note"].notna(), "")
        source = _data_source(config, pd.read_csv(snakemake.input.splits), snakemake.params)
        evaluation = config["evaluation"]
        verdict = training_verdict(
            summary, min_dice=evaluation["guard_min_dice"], prior_margin=evaluation["guard_prior_margin"]
        )
        log.info("verdict: %s %s", verdict.status, verdict.reasons)
        out_dir = os.path.dirname(snakemake.output[0])
        figures = {
            key: os.path.relpath(getattr(snakemake.input, key), out_dir)
            for key in ("figure4", "figure3", "curves")
            if key in snakemake.input.keys()
        }
        training = config["training"]
        notes = _notes(config, snakemake.params)
        text = build_report(
            run=snakemake.params.run,
            summary=summary,
            stats=stats,
            paper=pd.read_csv(snakemake.input.paper),
            verdict=verdict,
            figures=figures,
            config=config,
            data_source=source,
            seeds=training["seeds"],
            versions=package_versions(),
            benchmarks=read_benchmarks(snakemake.params.benchmarks),
            figure4_summary=(
                pd.read_csv(snakemake.input.figure4_csv) if "figure4_csv" in snakemake.input.keys() else None
            ),
            checkpoints=file_fingerprints(
                [
                    (exp, seed, path)
                    for (exp, seed), path in zip(
                        snakemake.params.models, snakemake.input.get("checkpoints", []), strict=True
                    )
                ]
            ),
            notes=notes,
            curves=pd.read_csv(snakemake.input.curves_csv),
            postprocess=snakemake.params.postprocess,
            **_extra_inputs(snakemake),
        )
        write_text_atomic(snakemake.output[0], text)


def _optional_table(snakemake, key):
    """The input ``key`` as a table; None when the rule does not give it or it holds no table."""
    import pandas as pd

    if key not in snakemake.input.keys():
        return None
    try:
        return pd.read_csv(getattr(snakemake.input, key))
    except pd.errors.EmptyDataError:
        return None


def _ledger_text(snakemake):
    """The slice ledger and the models' behaviour on it as Markdown, when the rule gives the ledger."""
    import pandas as pd

    from tedsnet.reporting.ledger import ledger_markdown

    ledger = _optional_table(snakemake, "ledger")
    if ledger is None:
        return None

    behaviour = _optional_table(snakemake, "ledger_behaviour")
    return ledger_markdown(ledger, pd.DataFrame() if behaviour is None else behaviour)


def _evaluation_sets(snakemake):
    """Set -> SetTables (its Table 1, paired tests and intervals, the last two None when not given), for each
    further evaluation set the rule gives."""
    from tedsnet.data.evaluation_sets import EVALUATION_SETS
    from tedsnet.reporting.report import SetTables

    sets = {}
    for name in EVALUATION_SETS:
        summary = _optional_table(snakemake, f"{name}_table1")
        if summary is None:
            continue
        tests = _optional_table(snakemake, f"{name}_stats")
        if tests is not None and "note" in tests.columns:
            tests["note"] = tests["note"].astype(object).where(tests["note"].notna(), "")
        sets[name] = SetTables(summary, tests, _optional_table(snakemake, f"{name}_intervals"))
    return sets


def _extra_inputs(snakemake) -> dict:
    """build_report's optional tables (report_extra_inputs in report.smk): the follow-up's numbers, intervals,
    seed spread, patient-level tests, slice ledger, further evaluation sets."""
    return {
        "media2024": _optional_table(snakemake, "media2024"),
        "intervals": _optional_table(snakemake, "intervals"),
        "seed_spread": _optional_table(snakemake, "seed_spread"),
        "patient_tests": _optional_table(snakemake, "patient_tests"),
        "ledger_text": _ledger_text(snakemake),
        "evaluation_sets": _evaluation_sets(snakemake),
    }


def _data_source(config, splits, params) -> str:
    """One line on the data: ACDC or the phantom cohort, its pixel size and prior, the patients per split."""
    data = config["data"]
    counts = splits["split"].value_counts()
    split_text = ", ".join(f"{s} {int(counts.get(s, 0))}" for s in ("train", "val", "test"))
    if data["source"] == "acdc":
        source = "real ACDC training set (Bernard et al., IEEE TMI 2018; the folder given as acdc_root)"
    else:
        phantom = data["phantom"]
        source = (
            f"synthetic phantom cohort in the ACDC layout (tedsnet.data.phantom), {phantom['n_patients']} "
            f"patients, seed {phantom['seed']}"
        )
    scale = float(params.pixel_scale)
    if scale != 1.0:
        from tedsnet.experiments import with_prior_geometry

        prior = config["prior"]
        ring = with_prior_geometry("tedsnet", prior["radius"], prior["thickness"], pixel_scale=scale)
        source += (
            f", drawn at {scale:g}x ACDC's pixel size: crop {' x '.join(str(c) for c in params.crop)}, "
            f"ring prior radius {ring.prior_radius:g} px, thickness {ring.prior_thickness:g} px ("
            + (
                "the paper's 30 and the authors' 7"
                if prior["radius"] is None and prior["thickness"] is None
                else "the config's prior"
            )
            + " at ACDC's pixel size)"
        )
    return source + f"; patients per split: {split_text}"


def _notes(config, params) -> list[str]:
    """The "what was run" lines: training settings, the parts a part=report build read, what is not run yet."""
    training = config["training"]
    speed_mode = training["speed_mode"]
    if speed_mode == "auto":
        speed_mode = "auto (fp32 or fast, picked per training job: see its log)"
    notes = [
        f"Training: {training['epochs']} epochs, batch {training['batch_size']}, lr {training['lr']}, "
        f"threshold {training['threshold']}, speed mode {speed_mode}, device {training['device']}, "
        f"per-experiment overrides {training['overrides'] or 'none'}",
    ]
    own_seeds = {e: o["seeds"] for e, o in training["overrides"].items() if o.get("seeds")}
    if own_seeds:
        notes.append(
            f"Seeds of their own (the others: {', '.join(str(s) for s in training['seeds'])}): "
            + "; ".join(f"{e} {', '.join(str(s) for s in seeds)}" for e, seeds in own_seeds.items())
        )
    if config.get("part") == "report":
        notes.append(
            "Built with `part=report` from the per-case CSVs and training logs of the parts already run: "
            + ", ".join(f"{name} ({', '.join(models)})" for name, models in config["parts"].items())
        )
    if params.missing_rows:
        notes.append("**Rows not run yet** (no per-case CSV): " + ", ".join(params.missing_rows))
    if params.missing_points:
        notes.append(
            "**Figure 4 points not run yet** (no per-case CSV; a sweep needs two points to be drawn): "
            + ", ".join(params.missing_points)
        )
    return notes


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
