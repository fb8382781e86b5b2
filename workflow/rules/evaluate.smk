# Per-case metrics: one CSV per experiment (every seed), one row per test case and seed. The same for each evaluation
# set (evaluation_sets.smk): predictions and metrics of every Table 1 row, each set's Table 1 and paired tests, and
# the slice ledger.


rule evaluate:
    input:
        predictions=lambda wildcards: predictions(wildcards.exp),
        test=f"{R}/data/test.npz",
    output:
        f"{R}/metrics/{{exp}}.csv",
    log:
        f"{R}/logs/evaluate/{{exp}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/{{exp}}.tsv"
    conda:
        CONDA_ENV
    params:
        seeds=lambda wildcards: seeds_of(wildcards.exp),
        threshold=config["evaluation"]["threshold"],
    script:
        "../scripts/evaluate.py"


rule training_log:
    input:
        f"{R}/models/{{exp}}/seed{{seed}}/history.csv",
    output:
        f"{R}/training_logs/{{exp}}/seed{{seed}}.csv",
    log:
        f"{R}/logs/training_log/{{exp}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/training_log.py"


rule predict_set:
    input:
        checkpoint=f"{R}/models/{{exp}}/seed{{seed}}/best.pt",
        test=f"{R}/data/{{eset}}.npz",
    output:
        # A set's soft maps and fields take far more room than the metrics made from them, so they go once evaluated.
        temp(f"{R}/predictions/{{exp}}/seed{{seed}}.{{eset}}.npz"),
    log:
        f"{R}/logs/predict_set/{{eset}}/{{exp}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/predict_set/{{eset}}/{{exp}}/seed{{seed}}.tsv"
    conda:
        CONDA_ENV
    threads: config["training"]["num_threads"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=config["resources"]["predict_mem_mb"],
    params:
        threshold=config["training"]["threshold"],
        batch_size=config["training"]["batch_size"],
        device=config["training"]["device"],
    script:
        "../scripts/predict.py"


rule evaluate_set:
    input:
        predictions=lambda wildcards: set_predictions(wildcards.exp, wildcards.eset),
        test=f"{R}/data/{{eset}}.npz",
    output:
        f"{R}/{{eset}}/metrics/{{exp}}.csv",
    log:
        f"{R}/logs/evaluate_set/{{eset}}/{{exp}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_set/{{eset}}/{{exp}}.tsv"
    conda:
        CONDA_ENV
    params:
        seeds=lambda wildcards: set_seeds(wildcards.exp),
        threshold=config["evaluation"]["threshold"],
    script:
        "../scripts/evaluate.py"


rule table1_set:
    input:
        lambda wildcards: set_metrics_files(wildcards.eset, SET_ROWS[wildcards.eset]),
    output:
        csv=f"{R}/{{eset}}/table1.csv",
        md=f"{R}/{{eset}}/table1.md",
        tex=f"{R}/{{eset}}/table1.tex",
    log:
        f"{R}/logs/table1_set/{{eset}}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/table1.py"


rule stats_set:
    input:
        lambda wildcards: set_metrics_files(wildcards.eset, SET_ROWS[wildcards.eset]),
    output:
        csv=f"{R}/{{eset}}/stats.csv",
        intervals=f"{R}/{{eset}}/intervals.csv",
        spread=f"{R}/{{eset}}/seed_spread.csv",
        patient=f"{R}/{{eset}}/patient_tests.csv",
    log:
        f"{R}/logs/stats_set/{{eset}}.log",
    conda:
        CONDA_ENV
    params:
        reference=config["evaluation"]["reference"],
        patient_references=PATIENT_REFERENCES,
    script:
        "../scripts/stats.py"


# With part=report the ledger is rebuilt only from a prepared data ledger that is here; otherwise the one there is
# read as it is.
if _ledger_ready():

    rule ledger:
        input:
            data=f"{R}/data/ledger.csv",
            metrics=[f for files in ledger_metrics().values() for f in files],
        output:
            scans=f"{R}/ledger.csv",
            behaviour=f"{R}/ledger_behaviour.csv",
        log:
            f"{R}/logs/ledger.log",
        conda:
            CONDA_ENV
        params:
            sets=[eset for eset, files in ledger_metrics().items() for _ in files],
        script:
            "../scripts/ledger.py"
