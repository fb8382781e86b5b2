# Data: the phantom cohort (or real ACDC) -> prepared train/val/test splits, splits.csv and a montage; then the
# evaluation sets (every slice of the test scans; ACDC's testing/ patients when the root has them) and the ledger.


# The names of the evaluation sets, used by the rules here and in evaluate.smk (Snakemake ignores a second include).
include: "evaluation_sets.smk"


# An ACDC run's part=report with no ACDC root reads what the parts left (per-case CSVs, logs, the committed split
# and ledger); without these rules it cannot prepare a phantom cohort in ACDC's place.
if PREPARES_DATA:

    rule phantom_cohort:
        output:
            directory(f"{R}/cohort"),
        log:
            f"{R}/logs/phantom_cohort.log",
        benchmark:
            f"{R}/benchmarks/phantom_cohort.tsv"
        conda:
            CONDA_ENV
        params:
            n_patients=config["data"]["phantom"]["n_patients"],
            seed=config["data"]["phantom"]["seed"],
            pixel_scale=config["data"]["phantom"]["pixel_scale"],
            crop=CROP,
        script:
            "../scripts/phantom_cohort.py"

    rule prepare_dataset:
        input:
            unpack(dataset_inputs),
        output:
            train=f"{R}/data/train.npz",
            val=f"{R}/data/val.npz",
            test=f"{R}/data/test.npz",
            splits=f"{R}/data/splits.csv",
            provenance=f"{R}/data/provenance.csv",
            dataset=f"{R}/data/dataset.json",
            montage=f"{R}/montage.png",
        log:
            f"{R}/logs/prepare_dataset.log",
        benchmark:
            f"{R}/benchmarks/prepare_dataset.tsv"
        conda:
            CONDA_ENV
        params:
            root=ACDC_ROOT or f"{R}/cohort",
            data=DATA_PARAMS,
            crop=CROP,
        script:
            "../scripts/prepare_dataset.py"

    rule prepare_evaluation_sets:
        input:
            root=ACDC_ROOT or f"{R}/cohort",
            splits=f"{R}/data/splits.csv",
            train=f"{R}/data/train.npz",
            val=f"{R}/data/val.npz",
            test=f"{R}/data/test.npz",
        output:
            **evaluation_set_files(),
        log:
            f"{R}/logs/prepare_evaluation_sets.log",
        benchmark:
            f"{R}/benchmarks/prepare_evaluation_sets.tsv"
        conda:
            CONDA_ENV
        params:
            crop=CROP,
            n_slices=config["data"]["slices_per_scan"],
        script:
            "../scripts/prepare_evaluation_sets.py"
