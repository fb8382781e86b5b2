"""Evaluation sets (rule prepare_evaluation_sets): every slice of the test scans and, when the cohort root has
testing/, ACDC's official testing patients (protocol slices and every slice), with the per-scan slice ledger.

tedsnet.data.evaluation_sets.prepare_evaluation_sets audits the split against the testing/ folder and the prepared
train/val/test files first (a patient in two of them stops the job), then writes every file atomically into
results/<run>/data/ next to the prepared splits, which it only reads.
"""

import sys
from pathlib import Path

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        from tedsnet.data.evaluation_sets import prepare_evaluation_sets
        from tedsnet.data.splits import SPLITS

        result = prepare_evaluation_sets(
            snakemake.input.root,
            Path(snakemake.output.ledger).parent,
            snakemake.input.splits,
            crop=tuple(int(c) for c in snakemake.params.crop),
            n_slices=int(snakemake.params.n_slices),
            protocol_files={name: snakemake.input[name] for name in SPLITS},
            progress=sys.stderr.isatty(),  # bars on a terminal only, never in the log file
        )
        log.info("slices per set %s", result.counts)
        if result.short_scans:
            log.warning("scans without the protocol's ring slices (none kept): %s", result.short_scans)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
