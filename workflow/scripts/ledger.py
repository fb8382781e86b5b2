"""The slice ledger of a run (rule ledger): every scan of the all-slices sets with the slices of each class and how
many the protocol keeps (ledger.csv), and how each Table 1 row does on each class of slice (ledger_behaviour.csv).

Each metrics file carries its cases' slice class and kept flag (copied by the evaluation from the set's table);
``params.sets`` names the set of each. Both outputs hold numbers and identifiers only.
"""

from _common import logged


def main(snakemake) -> None:
    with logged(snakemake) as log:
        import pandas as pd

        from tedsnet.data.ledger import ledger_totals
        from tedsnet.io import write_csv_atomic
        from tedsnet.reporting.ledger import ledger_behaviour

        scans = pd.read_csv(snakemake.input.data, dtype={"set": str, "patient_id": str, "group": str})
        log.info("slices per set:\n%s", ledger_totals(scans).to_string(index=False))
        metrics = pd.concat(
            [
                pd.read_csv(path).assign(set=name)
                for path, name in zip(snakemake.input.metrics, snakemake.params.sets, strict=True)
            ],
            ignore_index=True,
        )
        behaviour = ledger_behaviour(metrics, by=("set", "experiment", "slice_class"))
        write_csv_atomic(scans, snakemake.output.scans)
        write_csv_atomic(behaviour, snakemake.output.behaviour)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
