# Per-case metrics: one CSV per experiment (every seed), one row per test case and seed.


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
        seeds=SEEDS,
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
