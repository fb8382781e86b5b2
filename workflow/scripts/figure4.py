"""Figure 4: integration layers and prior radius against the metrics (rule figure4)."""

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        import pandas as pd

        from tedsnet.io import write_csv_atomic
        from tedsnet.reporting.figure4 import figure4_data, figure4_summary, plot_figure4

        frames = [pd.read_csv(p) for p in snakemake.input]
        metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["experiment"])
        data = figure4_data(metrics, snakemake.params.sweeps)
        summary = figure4_summary(data)
        log.info("\n%s", summary)
        plot_figure4(data, snakemake.output.png, snakemake.output.pdf)
        write_csv_atomic(summary, snakemake.output.csv)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
