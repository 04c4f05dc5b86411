"""The demo evaluation's metrics (fgat_demo/metrics.py) on hand-made cases with known answers."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fgat_core.schedule import Schedule, scaled_linear_alphas_cumprod
from fgat_demo.metrics import (
    background_error,
    changed_mask,
    dilate,
    global_colour_transfer,
    iou,
    part_colour_errors,
    part_pixel_errors,
    score_pair,
)

ROOT = Path(__file__).resolve().parents[1]


def _labels():
    labels = np.zeros((16, 16), dtype=int)
    labels[2:6, 2:6] = 1  # 16 px
    labels[8:12, 8:14] = 2  # 24 px
    return labels


def test_part_pixel_errors_are_per_part_and_nan_for_a_missing_part():
    truth = np.full((16, 16, 3), 0.5)
    out = truth.copy()
    labels = _labels()
    out[labels == 1] += 0.1
    out[labels == 2, 0] -= 0.3  # one channel of three
    errs = part_pixel_errors(out, truth, labels, 3)
    assert errs[0] == pytest.approx(0.1) and errs[1] == pytest.approx(0.1) and np.isnan(errs[2])


def test_colour_error_ignores_where_the_pattern_lies_but_pixel_error_does_not():
    labels = _labels()
    truth = np.zeros((16, 16, 3))
    truth[2:6, 2:6][::2] = 1.0  # stripes in part 1: half the rows white
    out = np.zeros((16, 16, 3))
    out[2:6, 2:6][1::2] = 1.0  # the same stripes shifted by a row
    assert part_colour_errors(out, truth, labels, 2)[0] == pytest.approx(0.0)
    assert part_pixel_errors(out, truth, labels, 2)[0] == pytest.approx(1.0)


def test_iou_of_a_shifted_square_and_the_changed_mask():
    bg = np.full((16, 16, 3), 0.2)
    out = bg.copy()
    out[4:8, 4:8] = 0.9
    square = np.zeros((16, 16), bool)
    square[4:8, 6:10] = True  # shifted by 2: overlap 8, union 24
    found = changed_mask(out, bg)
    assert found.sum() == 16 and found[4:8, 4:8].all()
    assert iou(found, square) == pytest.approx(8 / 24)
    assert changed_mask(bg + 0.1, bg).sum() == 0  # below the threshold
    assert iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0


def test_dilate_and_background_error_outside_the_grown_mask():
    m = np.zeros((9, 9), bool)
    m[4, 4] = True
    assert dilate(m, 1).sum() == 9 and dilate(m, 2).sum() == 25
    src = np.zeros((16, 16, 3))
    mask = np.zeros((16, 16), bool)
    mask[6:10, 6:10] = True
    out = src.copy()
    out[5:11, 5:11] = 1.0  # changes inside the mask grown by 1 (< margin 2): not background
    assert background_error(out, src, mask) == 0.0
    out[0, :] = 0.64  # one changed row of the 256 - 64 pixels outside the grown mask
    assert background_error(out, src, mask) == pytest.approx(0.64 * 16 / (256 - 64))


def test_global_colour_transfer_takes_the_target_statistics():
    rng = np.random.default_rng(0)
    src = 0.4 + 0.1 * rng.standard_normal((32, 32, 3))
    tar = 0.6 + 0.05 * rng.standard_normal((32, 32, 3))
    out = global_colour_transfer(src, tar)
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), tar.reshape(-1, 3).mean(0), atol=1e-6)
    np.testing.assert_allclose(out.reshape(-1, 3).std(0), tar.reshape(-1, 3).std(0), atol=1e-6)
    np.testing.assert_array_equal(global_colour_transfer(src, tar, src), out)  # `image` defaults to the source
    for c in range(3):  # an affine map of each channel: the structure stays
        assert np.corrcoef(out[..., c].ravel(), src[..., c].ravel())[0, 1] == pytest.approx(1.0)


def test_score_of_the_ground_truth_itself_is_perfect():
    labels = _labels()
    bg = np.full((16, 16, 3), 0.3)
    source = bg.copy()
    source[labels > 0] = 0.8
    truth = bg.copy()
    truth[labels == 1] = 0.0
    truth[labels == 2] = 1.0
    s = score_pair(truth, truth, source, bg, labels, 2)
    assert (s.appearance, s.colour, s.iou, s.background) == (0.0, 0.0, 1.0, 0.0)
    s = score_pair(source, truth, source, bg, labels, 2)  # no transfer: structure kept, appearance wrong
    assert s.iou == 1.0 and s.background == 0.0
    assert s.appearance == pytest.approx((0.8 + 0.2) / 2)


def _eval_demo():
    from fgat_demo import evaluate

    return evaluate


def test_next_timestep_host_shifts_each_level_to_the_next_noisier_one():
    """The DDIMInverseScheduler convention: level k (timestep tau_k) sees tau_{k-1}; the clean level sees tau_{N-1}."""
    seen = []

    class Host:
        def eps(self, x, t, cond):
            seen.append(t.tolist())
            return x

    sched = Schedule.ddim(scaled_linear_alphas_cumprod(), 10)  # 901, 801, ..., 1, then 0
    host = _eval_demo().NextTimestepHost(Host(), sched)
    host.eps(torch.zeros(3), torch.tensor([0, 1, 801]), {})
    assert seen == [[1, 101, 901]]


def test_half_mask_grid_experiment_records_the_8x8_layers_and_restores_the_default():
    from torch import nn

    from fgat_core.host import AttentionLayer
    from fgat_core.mask import AttentionRecorder

    layer = [AttentionLayer("l", nn.Identity(), nn.Identity(), 1)]
    with _eval_demo().half_mask_grid():
        assert AttentionRecorder(layer, [1], (16, 16), "quarter").grids == [(8, 8)]
        assert len(AttentionRecorder(layer, [1], (16, 16), "all").grids) == 5
    assert AttentionRecorder(layer, [1], (16, 16), "quarter").grids == [(4, 4)]


def test_paired_differences_mean_standard_error_and_share_lower():
    pairs = ((1.0, 0.5), (1.0, 0.7), (1.0, 1.3))
    rows = [{"scores": {"a": {"appearance": x}, "b": {"appearance": y}}} for x, y in pairs]
    table = _eval_demo().paired(rows, ["a", "b"], "a")
    d = np.array([-0.5, -0.3, 0.3])
    se = d.std(ddof=1) / np.sqrt(3)
    assert f"| b | {d.mean():+.4f} ± {se:.4f} | 67 % |" in table
    assert "| a |" not in table.split("\n", 2)[2]
