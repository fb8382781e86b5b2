"""Per-case metrics of one experiment over all its seeds (rule evaluate): one CSV row per test case and seed."""

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        import pandas as pd

        from tedsnet.data.prepared import load_split
        from tedsnet.evaluation.cases import evaluate_predictions
        from tedsnet.experiments import get_experiment
        from tedsnet.inference.predict import load_predictions
        from tedsnet.io import write_csv_atomic
        from tedsnet.network.model import count_parameters

        name = snakemake.wildcards.exp
        test = load_split(snakemake.input.test)
        frames = []
        for seed, path in zip(snakemake.params.seeds, snakemake.input.predictions, strict=True):
            frame = evaluate_predictions(
                load_predictions(path), test, name, seed=int(seed), threshold=snakemake.params.threshold
            )
            log.info("%s seed %s: %d cases, mean Dice %.4f", name, seed, len(frame), frame["dice"].mean())
            frames.append(frame)
        metrics = pd.concat(frames, ignore_index=True)
        experiment = get_experiment(name)
        metrics["label"] = experiment.label
        metrics["parameters"] = count_parameters(experiment.build())
        write_csv_atomic(metrics, snakemake.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
