"""Copy one model's per-epoch history out of its (ignored) model folder (rule training_log).

The copy under ``results/<run>/training_logs/`` holds numbers only (epoch, steps, images seen, loss terms,
validation Dice, seconds), so an ACDC run can commit it and rebuild its learning curves without the models.
"""

from _common import copy_atomic, logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        import pandas as pd

        from tedsnet.training.engine import HISTORY_COLUMNS

        history = pd.read_csv(snakemake.input[0])
        missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
        if missing:
            raise ValueError(f"{snakemake.input[0]} lacks history columns {missing}.")
        log.info("%d epochs, last val Dice %.4f", len(history), history["val_dice"].iloc[-1])
        copy_atomic(snakemake.input[0], snakemake.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
