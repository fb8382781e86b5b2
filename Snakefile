# TEDS-Net reproducibility suite (Wyburd et al., MICCAI 2021): the whole pipeline.
#
#   snakemake --cores all                                         # default run (synthetic phantom, CPU)
#   snakemake --cores all --configfile workflow/config/smoke.yaml # the same DAG at tiny sizes (CI)
#   snakemake --cores all --config acdc_root=/path/to/acdc        # the default run on real ACDC
#   snakemake --profile workflow/profiles/slurm --configfile workflow/config/paper.yaml   # published protocol
#
# DAG: cohort -> prepared dataset -> train (experiment x seed) -> predict -> per-case metrics -> Table 1, paired
# tests, Figure 4, Figure 3, learning curves -> report.md, all under results/<run>/. The config keys are explained
# in docs/configuration.md and validated by workflow/schemas/config.schema.yaml; a method of your own joins
# through the key `plugins` (docs/adding-a-method.md).

from snakemake.utils import min_version

min_version("9.0")


# The default run's settings, used only when no --configfile is given: a config passed with --configfile replaces
# them rather than being merged over them (Snakemake's plain `configfile:` would let every key default.yaml sets and
# the other config omits leak in), and the schema fills what a config leaves out.
if not workflow.overwrite_configfiles:

    configfile: "workflow/config/default.yaml"


# Types the --config values by the schema, validates the config and checks every value that names an experiment
# and the crop, so that a config error stops the workflow before any job runs.
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
