"""Generate the synthetic phantom cohort in the ACDC layout (rule phantom_cohort), atomically.

The cohort is written into a temporary sibling folder and renamed into place, so a failure leaves no partial
cohort.
"""

import os
import shutil
import sys
from pathlib import Path

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        from tedsnet.data.phantom import write_phantom_cohort

        out = Path(snakemake.output[0])
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            table = write_phantom_cohort(
                tmp,
                n_patients=int(snakemake.params.n_patients),
                seed=int(snakemake.params.seed),
                keep_within=tuple(int(s) for s in snakemake.params.crop),
                pixel_scale=float(snakemake.params.pixel_scale),
                progress=sys.stderr.isatty(),  # bars on a terminal only, never in the log file
            )
            log.info("%d phantom patients: %s", len(table), table["group"].value_counts().to_dict())
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
