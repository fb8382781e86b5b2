# Training and prediction: one job per experiment and seed.


rule train:
    input:
        unpack(train_inputs),
    output:
        checkpoint=f"{R}/models/{{exp}}/seed{{seed}}/best.pt",
        history=f"{R}/models/{{exp}}/seed{{seed}}/history.csv",
    log:
        f"{R}/logs/train/{{exp}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{exp}}/seed{{seed}}.tsv"
    conda:
        CONDA_ENV
    threads: config["training"]["num_threads"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime_min"],
    params:
        options=lambda wildcards: train_options(wildcards.exp),
        threshold=config["training"]["threshold"],
        device=config["training"]["device"],
        resume=config["training"]["resume"],
        speed_mode=config["training"]["speed_mode"],
        prior=config["prior"],
        model_settings=MODEL_SETTINGS,
        pixel_scale=PIXEL_SCALE,
        work=lambda wildcards: f"{model_dir(wildcards.exp, wildcards.seed)}/work",
    script:
        "../scripts/train.py"


rule predict:
    input:
        checkpoint=f"{R}/models/{{exp}}/seed{{seed}}/best.pt",
        test=f"{R}/data/test.npz",
    output:
        f"{R}/predictions/{{exp}}/seed{{seed}}.npz",
    log:
        f"{R}/logs/predict/{{exp}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/predict/{{exp}}/seed{{seed}}.tsv"
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
