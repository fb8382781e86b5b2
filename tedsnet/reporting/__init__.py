"""Reporting of a run: Table 1, paired tests, Figure 4, Figure 3, learning curves and ``report.md``.

Modules (each imports only the ones above it in this list; none imports another that imports it back):

- :mod:`tedsnet.reporting.labels`: the display name of every row and sweep (``unet_smp`` -> ``"U-Net (smp)"``).
- :mod:`tedsnet.reporting.table1`: Table 1 (mean +- std per model, incorrect topology n/N, parameters) as CSV,
  Markdown and LaTeX; across seeds when there are several.
- :mod:`tedsnet.reporting.stats`: paired tests of TEDS-Net against every other row (slice-level and
  patient-level t-tests, Wilcoxon).
- :mod:`tedsnet.reporting.intervals`: patient-level bootstrap intervals (ED, ES, per seed and over seeds), the
  seeds' spread, paired tests over patients.
- :mod:`tedsnet.reporting.ledger`: each model's behaviour per slice class and the ledger's report section.
- :mod:`tedsnet.reporting.figure4`: Figure 4, integration layers and prior radius against the metrics.
- :mod:`tedsnet.reporting.figure3`: test cases where a U-Net's topology is wrong, with each model's contour.
- :mod:`tedsnet.reporting.curves`: learning curves from the training histories.
- :mod:`tedsnet.reporting.paper`: what the paper reports (its Table 1, epochs, Figure 4 text) and which
  experiment each of its rows is.
- :mod:`tedsnet.reporting.verdict`: the under-training guard.
- :mod:`tedsnet.reporting.provenance`: package versions, checkpoint fingerprints, wall time per job.
- :mod:`tedsnet.reporting.answers`: the reproduction questions answered from a run's numbers.
- :mod:`tedsnet.reporting.report`: the ``report.md`` builder, one function per section.

All plotting uses :class:`matplotlib.figure.Figure` directly (no pyplot state, no display needed).
"""
