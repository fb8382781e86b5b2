"""Figure 3-style grid: test cases where a U-Net's topology is wrong, with the contours (rule figure3)."""

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        import numpy as np
        import pandas as pd

        from tedsnet.data.prepared import load_split
        from tedsnet.inference.predict import binarise, load_predictions
        from tedsnet.reporting.figure3 import plot_figure3, select_figure3_cases

        models = list(snakemake.params.models)
        frames = [pd.read_csv(p) for p in snakemake.input.metrics]
        metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["experiment"])
        metrics = metrics[metrics.get("seed", 0) == snakemake.params.seed] if len(metrics) else metrics
        cases = (
            select_figure3_cases(metrics, max_cases=int(snakemake.params.max_cases)) if len(metrics) else []
        )
        log.info("cases with a wrong U-Net topology (up to %s): %s", snakemake.params.max_cases, cases)
        test = load_split(snakemake.input.test)
        index = {c: i for i, c in enumerate(test.table["case_id"].astype(str))}
        rows = [index[c] for c in cases]
        masks = {}
        for name, path in zip(models, snakemake.input.predictions, strict=True):
            pred = load_predictions(path)
            where = {c: i for i, c in enumerate(pred.case_id.astype(str))}
            take = [where[c] for c in cases]
            threshold = snakemake.params.threshold
            binary = pred.binary if threshold is None else binarise(pred.soft, float(threshold))
            masks[name] = binary[take] if take else np.zeros((0, *binary.shape[1:]), binary.dtype)
        betti = {}
        for name in models:
            rows_of = metrics[metrics["experiment"] == name].astype({"case_id": str}).set_index("case_id")
            if all(c in rows_of.index for c in cases):
                betti[name] = [(int(rows_of.at[c, "b0"]), int(rows_of.at[c, "b1"])) for c in cases]
        plot_figure3(
            test.images[rows], test.labels[rows], masks, snakemake.output[0], case_ids=cases, betti=betti
        )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
