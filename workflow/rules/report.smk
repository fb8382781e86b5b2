# Table 1, paired tests and intervals, Figure 4, Figure 3, learning curves and the report.


rule table1:
    input:
        metrics_files(ROWS),
    output:
        csv=f"{R}/table1.csv",
        md=f"{R}/table1.md",
        tex=f"{R}/table1.tex",
    log:
        f"{R}/logs/table1.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/table1.py"


rule stats:
    input:
        metrics_files(ROWS),
    output:
        csv=f"{R}/stats.csv",
        intervals=f"{R}/intervals.csv",
        spread=f"{R}/seed_spread.csv",
        patient=f"{R}/patient_tests.csv",
    log:
        f"{R}/logs/stats.log",
    conda:
        CONDA_ENV
    params:
        reference=config["evaluation"]["reference"],
        patient_references=PATIENT_REFERENCES,
    script:
        "../scripts/stats.py"


rule figure4:
    input:
        metrics_files(SWEEP_EXPERIMENTS),
    output:
        png=f"{R}/figure4.png",
        pdf=f"{R}/figure4.pdf",
        csv=f"{R}/figure4.csv",
    log:
        f"{R}/logs/figure4.log",
    conda:
        CONDA_ENV
    params:
        sweeps=SWEEPS,
    script:
        "../scripts/figure4.py"


rule figure3:
    input:
        test=f"{R}/data/test.npz",
        metrics=metrics_files(FIGURE3_MODELS),
        predictions=[predictions(exp, SEEDS[:1])[0] for exp in FIGURE3_MODELS],
    output:
        f"{R}/figure3.png",
    log:
        f"{R}/logs/figure3.log",
    conda:
        CONDA_ENV
    params:
        models=FIGURE3_MODELS,
        seed=SEEDS[0],
        max_cases=config["evaluation"]["figure3_cases"],
        threshold=config["evaluation"]["threshold"],
    script:
        "../scripts/figure3.py"


rule learning_curves:
    input:
        training_logs(CURVE_MODELS),
    output:
        png=f"{R}/learning_curves.png",
        csv=f"{R}/learning_curves.csv",
    log:
        f"{R}/logs/learning_curves.log",
    conda:
        CONDA_ENV
    params:
        runs=[(exp, seed) for exp in CURVE_MODELS for seed in logged_seeds(exp)],
        batch_sizes={exp: train_options(exp)["batch_size"] for exp in CURVE_MODELS},
    script:
        "../scripts/learning_curves.py"


rule report:
    input:
        unpack(lambda wildcards: report_inputs()),
        unpack(lambda wildcards: report_extra_inputs()),
    output:
        f"{R}/report.md",
    log:
        f"{R}/logs/report.log",
    conda:
        CONDA_ENV
    params:
        run=RUN,
        models=(
            [(exp, seed) for exp in MODELS for seed in seeds_of(exp)]
            if PART is None
            else []
        ),
        missing_rows=MISSING_ROWS,
        missing_points=MISSING_POINTS,
        config=config,
        crop=CROP,
        pixel_scale=PIXEL_SCALE,
        benchmarks=f"{R}/benchmarks",
        postprocess=config.get("postprocess", {}),
    script:
        "../scripts/report.py"
