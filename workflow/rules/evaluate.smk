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
