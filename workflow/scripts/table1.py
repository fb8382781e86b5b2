"""Table 1 as CSV, Markdown and LaTeX (rule table1)."""

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        import pandas as pd

        from tedsnet.reporting.table1 import summarise_table1, write_table1

        metrics = pd.concat([pd.read_csv(p) for p in snakemake.input], ignore_index=True)
        summary = summarise_table1(metrics)
        log.info("\n%s", summary[["experiment", "dice_mean", "hd_px_mean", "incorrect_topology", "n_test"]])
        write_table1(summary, snakemake.output.csv, snakemake.output.md, snakemake.output.tex)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
