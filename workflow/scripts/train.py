"""Train one experiment and seed (rule train): tedsnet.training.engine.train in a work folder, then copy out.

The work folder (``models/<exp>/seed<k>/work``, not a declared output) keeps ``last.pt`` across failures, so a
killed job resumes where it stopped; the declared outputs ``best.pt`` and ``history.csv`` are atomic copies made
only after training succeeded. A work folder from another configuration (or from more epochs than asked) is
discarded and training starts from scratch.
"""

from pathlib import Path

from _common import copy_atomic, logged, set_threads


def main(snakemake) -> None:
    with logged(snakemake) as log:
        import pandas as pd

        from tedsnet.experiments import with_model_settings, with_prior_geometry
        from tedsnet.io import remove_stale_temporaries
        from tedsnet.training.checkpoint import ResumeMismatchError
        from tedsnet.training.engine import train

        name = snakemake.wildcards.exp
        seed = int(snakemake.wildcards.seed)
        prior = snakemake.params.prior
        experiment = with_prior_geometry(
            name, prior["radius"], prior["thickness"], pixel_scale=float(snakemake.params.pixel_scale)
        )
        experiment = with_model_settings(experiment, snakemake.params.model_settings)
        options = dict(snakemake.params.options)
        work = Path(snakemake.params.work)
        resume = bool(snakemake.params.resume)
        history = work / "history.csv"
        if resume and history.exists():
            done = pd.read_csv(history)["epoch"].max()
            if pd.notna(done) and int(done) > int(options["epochs"]):
                log.info(
                    "work folder ran %d epochs, more than the %d asked: starting again",
                    done,
                    options["epochs"],
                )
                resume = False
        set_threads(snakemake.threads)
        kwargs = {
            "epochs": int(options["epochs"]),
            "batch_size": int(options["batch_size"]),
            "lr": float(options["lr"]),
            "seed": seed,
            "device": snakemake.params.device,
            "threshold": float(snakemake.params.threshold),
            "seg_loss": options.get("seg_loss"),
            "num_threads": int(snakemake.threads),
            "patience": options.get("patience"),
            "time_budget_s": options.get("time_budget_s"),
            "speed_mode": snakemake.params.speed_mode,
            "init_checkpoint": snakemake.input.get("init"),
        }
        log.info("experiment %s (%s), seed %d, options %s", experiment.name, experiment.label, seed, kwargs)
        kwargs.update(log=log.info, progress=True)
        try:
            result = train(
                experiment, snakemake.input.train, snakemake.input.val, work, resume=resume, **kwargs
            )
        except ResumeMismatchError as error:
            log.warning("%s\nThe work folder holds another configuration: training from scratch.", error)
            result = train(
                experiment, snakemake.input.train, snakemake.input.val, work, resume=False, **kwargs
            )
        log.info("result: %s", result)
        # A job killed while copying leaves temporaries beside the outputs.
        for tmp in remove_stale_temporaries([snakemake.output.history, snakemake.output.checkpoint]):
            log.info("removed %s, left by a killed copy", tmp)
        copy_atomic(result.paths.history, snakemake.output.history)
        copy_atomic(result.paths.best, snakemake.output.checkpoint)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
