"""Data layer: ACDC reader, phantom cohort, slice protocol, augmentation, splits, prepared datasets.

Modules (import them directly; this package imports nothing eagerly):

- :mod:`tedsnet.data.acdc`: ``read_patient``, ``read_cohort``, ``iter_cohort``, ``read_cohort_table``, ``read_info``.
- :mod:`tedsnet.data.phantom_anatomy`: ``PhantomParams`` (a patient's anatomy and acquisition, typed) and
  ``sample_params``.
- :mod:`tedsnet.data.phantom`: ``write_phantom_cohort`` (synthetic cohort in the exact ACDC layout) and
  ``generate_patient``, rendered from the drawn ``PhantomParams``.
- :mod:`tedsnet.data.slices`: ``extract_slices`` (ring slices, centre crop/pad, per-slice normalisation),
  ``classify_slices`` and ``extract_all_slices`` (every slice with its class and whether the protocol keeps it).
- :mod:`tedsnet.data.augment`: ``augment_slice`` (8 images per slice, labels kept Betti (1, 1)).
- :mod:`tedsnet.data.splits`: ``split_patients``, ``write_splits``, ``read_splits`` (patient-disjoint, stratified).
- :mod:`tedsnet.data.prepared`: ``save_split``, ``load_split``, ``prepare_dataset`` with ``PrepareSettings`` (one
  ``.npz`` per split).
- :mod:`tedsnet.data.evaluation_sets`: ``prepare_evaluation_sets`` (all slices of the test scans; ACDC's testing
  set) and ``audit_splits`` (no patient in two sets).
- :mod:`tedsnet.data.ledger`: ``scan_ledger`` (slices of each class per scan, and how many the protocol keeps).
- :mod:`tedsnet.data.montage`: ``write_montage`` (PNG grid with outlines).
- :mod:`tedsnet.data.stats`: cohort statistics and the phantom-vs-ACDC comparison table.
"""

__all__ = [
    "acdc",
    "augment",
    "evaluation_sets",
    "ledger",
    "montage",
    "phantom",
    "phantom_anatomy",
    "prepared",
    "slices",
    "splits",
    "stats",
]
