"""Prepared dataset (rule prepare_dataset): slices -> patient split -> augmentation -> train/val/test .npz.

tedsnet.data.prepared.prepare_dataset writes every file atomically into results/<run>/data/ (the three splits,
splits.csv, provenance.csv, dataset.json) and the montage of sample training images.
"""

import sys
from pathlib import Path

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        from tedsnet.data.prepared import PrepareSettings, prepare_dataset

        data = snakemake.params.data
        augment = data["augment"]
        split = data["split"]
        settings = PrepareSettings(
            seed=int(split["seed"]),
            fractions=tuple(float(f) for f in split["fractions"]),
            n_slices=int(data["slices_per_scan"]),
            crop=tuple(int(c) for c in snakemake.params.crop),
            n_augment=int(augment["n_images"]),
            rotation_deg=float(augment["rotation_deg"]),
            shift_frac=float(augment["shift_frac"]),
            zoom_frac=float(augment["zoom_frac"]),
        )
        result = prepare_dataset(
            snakemake.params.root,
            Path(snakemake.output.train).parent,
            settings,
            splits=snakemake.input.get("split"),
            montage_path=snakemake.output.montage,
            progress=sys.stderr.isatty(),  # bars on a terminal only, never in the log file
        )
        log.info("images per split %s in %.1f s", result.counts, result.seconds)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
