"""Predict the test split with one trained model (rule predict): soft, binary and fields in one .npz."""

import sys

from _common import logged, set_threads


def main(snakemake) -> None:
    with logged(snakemake) as log:
        from tedsnet.data.prepared import load_split
        from tedsnet.inference.predict import predict, save_predictions
        from tedsnet.training.checkpoint import load_checkpoint

        set_threads(snakemake.threads)
        model, experiment = load_checkpoint(snakemake.input.checkpoint, device=snakemake.params.device)
        test = load_split(snakemake.input.test)
        size = tuple(int(s) for s in test.images.shape[1:])
        log.info(
            "%s: %d test images %s, threshold %s",
            experiment.name,
            len(test.images),
            size,
            snakemake.params.threshold,
        )
        result = predict(
            model,
            test.images,
            experiment.prior(size),
            batch_size=int(snakemake.params.batch_size),
            device=snakemake.params.device,
            threshold=float(snakemake.params.threshold),
            case_id=test.table["case_id"].astype(str).tolist(),
            progress=sys.stderr.isatty(),  # bars on a terminal only, never in the log file
        )
        save_predictions(snakemake.output[0], result)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
