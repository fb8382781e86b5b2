"""The speed-mode comparison (tedsnet.speed.equivalence): noise bounds and messages, without training."""

import math

import pandas as pd
import pytest

from tedsnet.speed.equivalence import compare_modes, main


def test_compare_modes_uses_two_standard_errors_of_the_difference():
    runs = pd.DataFrame(
        {
            "experiment": "tedsnet",
            "mode": ["fp32"] * 3 + ["fast"] * 3,
            "seed": [0, 1, 2] * 2,
            "dice_mean": [0.70, 0.72, 0.74, 0.71, 0.73, 0.75],
            "hd_px_mean": [3.0, 3.0, 3.0, 9.0, 9.0, 9.0],  # no seed noise, a real change
            "nonpos_jac_bulk_pct_mean": [0.0] * 6,
            "nonpos_jac_ft_pct_mean": [math.nan] * 6,  # no such field: skipped
            "incorrect_topology": [0, 1, 0, 0, 0, 1],
        }
    )
    table = compare_modes(runs).set_index(["mode", "metric"])
    dice = table.loc[("fast", "dice_mean")]
    assert dice["difference"] == pytest.approx(0.01)
    assert dice["two_se"] == pytest.approx(2 * math.sqrt(2 * 0.02**2 / 3))
    assert dice["within_noise"]
    assert not table.loc[("fast", "hd_px_mean"), "within_noise"]  # 6 px apart, zero spread
    assert table.loc[("fast", "nonpos_jac_bulk_pct_mean"), "within_noise"]  # 0 == 0
    assert ("fast", "nonpos_jac_ft_pct_mean") not in table.index
    assert table.loc[("fp32", "dice_mean"), "difference"] == 0


def test_missing_dataset_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "nowhere")])
    assert "prepare a dataset first" in capsys.readouterr().err
