"""Paired tests of the reference (TEDS-Net) against every other Table 1 row; with the named outputs ``intervals``,
``spread`` and ``patient``, also the patient-bootstrap intervals, the spread over seeds and the patient-level
tests against each of ``params.patient_references`` present (rule stats)."""

from _common import logged


def _with_optional_columns(metrics):
    """The per-case table with every optional metric column, NaN where a row's CSV predates it, so that the
    intervals cover the same metrics for every row."""
    from tedsnet.reporting.table1 import OPTIONAL_METRICS

    missing = {m: float("nan") for m in OPTIONAL_METRICS if m not in metrics.columns}
    return metrics.assign(**missing) if missing else metrics


def _patient_tests(metrics, references, metric_names):
    """Patient-level paired tests of every row against each reference present, for each metric."""
    import pandas as pd

    from tedsnet.reporting.intervals import patient_level_paired_tests

    present = set(metrics["experiment"].astype(str))
    parts = [
        patient_level_paired_tests(metrics, reference=reference, metric=metric)
        for reference in dict.fromkeys(references)
        if reference in present
        for metric in metric_names
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _write_intervals(snakemake, metrics, log) -> None:
    """intervals.csv, seed_spread.csv and patient_tests.csv of the rows given."""
    from tedsnet.io import write_csv_atomic
    from tedsnet.reporting.intervals import DEFAULT_COLUMNS, bootstrap_intervals, seed_spread

    full = _with_optional_columns(metrics)
    intervals = bootstrap_intervals(full, columns=DEFAULT_COLUMNS)
    log.info("%d interval rows", len(intervals))
    write_csv_atomic(intervals, snakemake.output.intervals)
    write_csv_atomic(seed_spread(full, DEFAULT_COLUMNS), snakemake.output.spread)
    metric_names = [m for m in DEFAULT_COLUMNS if m in full.columns and full[m].notna().any()]
    write_csv_atomic(
        _patient_tests(full, snakemake.params.patient_references, metric_names), snakemake.output.patient
    )


def main(snakemake) -> None:
    with logged(snakemake) as log:
        import pandas as pd

        from tedsnet.io import write_csv_atomic
        from tedsnet.reporting.stats import paired_tests

        metrics = pd.concat([pd.read_csv(p) for p in snakemake.input], ignore_index=True)
        result = paired_tests(metrics, reference=snakemake.params.reference)
        if result.empty:
            log.warning(
                "reference %r is not among the experiments: no paired test", snakemake.params.reference
            )
        write_csv_atomic(result, snakemake.output[0])
        if "intervals" in snakemake.output.keys():
            _write_intervals(snakemake, metrics, log)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
