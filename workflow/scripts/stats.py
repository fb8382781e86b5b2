"""Paired tests of the reference (TEDS-Net) against every other Table 1 row (rule stats)."""

from _common import logged


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


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
