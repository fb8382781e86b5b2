"""Learning curves of every trained model (rule learning_curves)."""

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        from tedsnet.io import write_csv_atomic
        from tedsnet.reporting.curves import plot_learning_curves, read_histories

        runs = [(str(exp), int(seed)) for exp, seed in snakemake.params.runs]
        paths = dict(zip(runs, snakemake.input, strict=True))
        histories = read_histories(paths, batch_sizes=snakemake.params.batch_sizes)
        log.info("%d history rows from %d runs", len(histories), len(runs))
        plot_learning_curves(histories, snakemake.output.png)
        write_csv_atomic(histories, snakemake.output.csv)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
