"""Reporting of a run (DESIGN.md section 4): Table 1, paired tests, Figure 4, Figure 3, learning curves, report.

Modules:

- :mod:`tedsnet.io`: atomic writes (a temporary file renamed into place, never a partial output).
- :mod:`tedsnet.reporting.table1`: Table 1 (mean +- std per model, incorrect topology n/N, parameters) as CSV,
  Markdown and LaTeX; across seeds when there are several.
- :mod:`tedsnet.reporting.stats`: paired tests of TEDS-Net against every other row (slice-level and
  patient-level t-tests, Wilcoxon).
- :mod:`tedsnet.reporting.figure4`: Figure 4, integration layers and prior radius against the metrics.
- :mod:`tedsnet.reporting.figure3`: test cases where a U-Net's topology is wrong, with the contours.
- :mod:`tedsnet.reporting.curves`: learning curves from the training histories.
- :mod:`tedsnet.reporting.report`: the under-training verdict and the ``report.md`` builder.

All plotting uses :class:`matplotlib.figure.Figure` directly (no pyplot state, no display needed).
"""
