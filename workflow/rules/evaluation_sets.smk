# The evaluation sets beyond the protocol's test split (all slices of the test scans; ACDC's official testing set,
# its protocol slices and all its slices, when the ACDC root holds testing/) and the slice ledger: the sets, the
# Table 1 rows evaluated on each and the files the `all` target adds. Definitions only, no rules (snakemake --lint
# prefers functions and rules in separate files); the rules are in data.smk and evaluate.smk, which use these
# names, so data.smk includes this file (after common.smk).

from tedsnet.data.evaluation_sets import (
    ALL_SLICES_SETS,
    EVALUATION_SETS,
    evaluation_set_names,
)


def _sets_with_metrics():
    """The sets with the per-case metrics of at least one Table 1 row (part=report reads these)."""
    return [
        eset
        for eset in EVALUATION_SETS
        if any(os.path.exists(f"{R}/{eset}/metrics/{exp}.csv") for exp in EXPERIMENTS)
    ]


def _evaluation_sets():
    """The run's sets: test_all, and testing / testing_all when the ACDC root has testing/ (the phantom has none);
    with part=report also every set whose metrics are already there."""
    sets = evaluation_set_names(ACDC_ROOT)
    if PART == "report":
        found = set(_sets_with_metrics()) | (set(sets) if ACDC_ROOT else set())
        sets = [eset for eset in EVALUATION_SETS if eset in found]
    return sets


EVAL_SETS = _evaluation_sets()
# The Table 1 rows evaluated on each set, and (part=report) those left out because their metrics are missing.
SET_ROWS = {
    eset: [
        exp
        for exp in EXPERIMENTS
        if PART != "report" or os.path.exists(f"{R}/{eset}/metrics/{exp}.csv")
    ]
    for eset in EVAL_SETS
}
MISSING_SET_ROWS = {
    eset: [exp for exp in EXPERIMENTS if exp not in SET_ROWS[eset]]
    for eset in EVAL_SETS
}


wildcard_constraints:
    eset="|".join(re.escape(eset) for eset in EVAL_SETS) or "(?!)",


def evaluation_set_files():
    """The outputs of the job that prepares the sets: one .npz per set, the ledger and evaluation_sets.json."""
    return {
        **{eset: f"{R}/data/{eset}.npz" for eset in EVAL_SETS},
        "ledger": f"{R}/data/ledger.csv",
        "info": f"{R}/data/evaluation_sets.json",
    }


def set_seeds(exp):
    """The seeds whose models are evaluated on the sets (the experiment's seeds)."""
    return seeds_of(exp)


def set_predictions(exp, eset):
    """One experiment's predictions of a set, one file per seed."""
    return [f"{R}/predictions/{exp}/seed{seed}.{eset}.npz" for seed in set_seeds(exp)]


def set_metrics_files(eset, models):
    """The per-case metrics of `models` on a set."""
    return [f"{R}/{eset}/metrics/{exp}.csv" for exp in models]


def ledger_metrics():
    """The metrics the ledger reads: all-slices set -> one file per Table 1 row evaluated on it (each row's slice
    class and kept flag come with it from the set's table)."""
    return {
        eset: set_metrics_files(eset, SET_ROWS[eset])
        for eset in ALL_SLICES_SETS
        if eset in EVAL_SETS
    }


def _ledger_ready():
    """Whether the ledger is made: always in a whole run; with part=report when the prepared data ledger and some
    all-slices metrics are there (else the ledger files stay as they are)."""
    if PART is None:
        return True
    return (
        PART == "report"
        and os.path.exists(f"{R}/data/ledger.csv")
        and any(files for files in ledger_metrics().values())
    )


def evaluation_set_outputs():
    """What the `all` target adds for the sets: each active Table 1 row's metrics on each set; in a whole run and
    with part=report also each set's Table 1 and paired tests (sets with rows) and the ledger (when it can be
    made, see _ledger_ready)."""
    models = [exp for exp in EXPERIMENTS if exp in ACTIVE]
    out = [f for eset in EVAL_SETS for f in set_metrics_files(eset, models)]
    if PART not in (None, "report"):
        return out
    for eset in EVAL_SETS:
        if SET_ROWS[eset]:
            out += expand(f"{R}/{eset}/table1.{{ext}}", ext=("csv", "md", "tex"))
            out += [f"{R}/{eset}/stats.csv", f"{R}/{eset}/intervals.csv"]
    if _ledger_ready():
        out += [f"{R}/ledger.csv", f"{R}/ledger_behaviour.csv"]
    return out


def _report_files_of_others():
    """Report inputs that other rules write: input key -> path (the slice ledger, the further evaluation sets)."""
    files = {
        "ledger": f"{R}/ledger.csv",
        "ledger_behaviour": f"{R}/ledger_behaviour.csv",
    }
    for name in EVAL_SETS:
        files[f"{name}_table1"] = f"{R}/{name}/table1.csv"
        files[f"{name}_stats"] = f"{R}/{name}/stats.csv"
        files[f"{name}_intervals"] = f"{R}/{name}/intervals.csv"
    return files


def report_extra_inputs():
    """The report's optional inputs (scripts/report.py): the MedIA 2024 numbers, the stats rule's intervals, seed
    spread and patient-level tests, and the slice ledger and evaluation sets' tables that `all` makes in this
    invocation (evaluation_set_outputs) or, with part=report, that are already there (committed); a missing one
    leaves its section to say so.
    """
    made = set(evaluation_set_outputs())
    inputs = {
        "media2024": "workflow/resources/media2024_table.csv",
        "intervals": f"{R}/intervals.csv",
        "seed_spread": f"{R}/seed_spread.csv",
        "patient_tests": f"{R}/patient_tests.csv",
    }
    inputs.update(
        {
            key: path
            for key, path in _report_files_of_others().items()
            if path in made or (PART == "report" and os.path.exists(path))
        }
    )
    return inputs
