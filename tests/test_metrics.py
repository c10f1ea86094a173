"""Metrics against scikit-learn, hand-made cases, and a brute-force HD95."""

import numpy as np
import pytest
from sklearn import metrics as sk

from frcunet.evaluation.metrics import (
    hd95,
    per_image_metrics,
    per_image_statistics,
    pooled_metrics,
    thresholded_jaccard,
)


def _random_case(seed, shape=(5, 24, 32), decimals=None):
    rng = np.random.default_rng(seed)
    truth = rng.random(shape) > 0.7
    noise = rng.random(shape)
    probabilities = np.clip(0.55 * truth + 0.6 * noise - 0.1, 0, 1)
    if decimals is not None:
        probabilities = np.round(probabilities, decimals)
    return truth, probabilities


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooled_metrics_equal_scikit_learn(seed):
    truth, probabilities = _random_case(seed, decimals=4)
    got = pooled_metrics(truth.astype(np.uint8), probabilities)
    t, p = truth.ravel(), probabilities.ravel() > 0.5
    assert got["f1"] == pytest.approx(sk.f1_score(t, p))
    assert got["se"] == pytest.approx(sk.recall_score(t, p))
    assert got["sp"] == pytest.approx(sk.recall_score(~t, ~p))
    assert got["acc"] == pytest.approx(sk.accuracy_score(t, p))
    assert got["pc"] == pytest.approx(sk.precision_score(t, p))
    assert got["js"] == pytest.approx(sk.jaccard_score(t, p))
    assert got["js"] == pytest.approx(got["f1"] / (2 - got["f1"]))
    # On the 1e-4 grid the histogram curves are exact.
    assert got["auc_roc"] == pytest.approx(sk.roc_auc_score(t, probabilities.ravel()), abs=1e-9)
    assert got["auc_pr"] == pytest.approx(sk.average_precision_score(t, probabilities.ravel()), abs=1e-9)


def test_areas_off_the_grid_are_within_the_bin_width():
    truth, probabilities = _random_case(7, shape=(4, 64, 64))
    got = pooled_metrics(truth, probabilities)
    assert got["auc_roc"] == pytest.approx(sk.roc_auc_score(truth.ravel(), probabilities.ravel()), abs=2e-4)
    assert got["auc_pr"] == pytest.approx(sk.average_precision_score(truth.ravel(), probabilities.ravel()), abs=2e-4)


def test_areas_come_from_probabilities_not_thresholded_masks():
    truth = np.array([[[0, 0, 1, 1]]], bool)
    ranked = np.array([[[0.1, 0.2, 0.3, 0.4]]])  # all below 0.5, yet perfectly ordered
    got = pooled_metrics(truth, ranked)
    assert got["auc_roc"] == pytest.approx(1.0) and got["auc_pr"] == pytest.approx(1.0)
    assert got["se"] == 0.0


def _square(size=40, top=10, left=10, side=10):
    mask = np.zeros((size, size), bool)
    mask[top: top + side, left: left + side] = True
    return mask


def test_per_image_metrics_on_squares_with_known_overlap():
    truth = _square()
    shifted = _square(left=15)  # overlaps half: 50 of 100 pixels
    got = per_image_metrics(np.stack([truth, truth]), np.stack([truth, shifted]).astype(float))
    np.testing.assert_allclose(got["dice"], [1.0, 0.5])
    np.testing.assert_allclose(got["iou"], [1.0, 50 / 150])
    np.testing.assert_allclose(got["se"], [1.0, 0.5])
    np.testing.assert_allclose(got["sp"], [1.0, 1 - 50 / 1500])
    np.testing.assert_allclose(got["acc"], [1.0, 1 - 100 / 1600])
    np.testing.assert_allclose(got["hd95"], [0.0, 5.0])


def test_shifted_discs_have_the_overlap_geometry_predicts():
    yy, xx = np.mgrid[:200, :200]
    radius, shift = 40, 30
    a = (yy - 100) ** 2 + (xx - 85) ** 2 <= radius**2
    b = (yy - 100) ** 2 + (xx - 85 - shift) ** 2 <= radius**2
    d = shift / (2 * radius)
    lens = 2 * radius**2 * np.arccos(d) - shift / 2 * np.sqrt(4 * radius**2 - shift**2)  # circle-circle overlap
    expected_dice = lens / (np.pi * radius**2)
    got = per_image_metrics(a[None], b[None].astype(float))
    assert got["dice"][0] == pytest.approx(expected_dice, rel=0.01)
    assert got["hd95"][0] == pytest.approx(shift, abs=1.5)


def test_empty_masks_follow_the_written_rules():
    empty, square = np.zeros((20, 20), bool), _square(20, 5, 5, 5)
    got = per_image_metrics(np.stack([empty, empty, square]), np.stack([empty, square, empty]).astype(float))
    np.testing.assert_array_equal(got["dice"], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(got["iou"], [1.0, 0.0, 0.0])
    assert np.isnan(got["se"][0]) and np.isnan(got["se"][1]) and got["se"][2] == 0.0
    assert np.isnan(got["hd95"]).all()
    np.testing.assert_allclose(got["hd95_diag"], [0.0, np.hypot(20, 20), np.hypot(20, 20)])
    summary = per_image_statistics(got)
    assert summary["undefined"]["hd95"] == 3 and summary["undefined"]["se"] == 2
    assert summary["mean"]["dice"] == pytest.approx(1 / 3)


def _brute_hd95(a, b):
    def edge(m):
        padded = np.pad(m, 1)
        inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        return np.argwhere(m & ~inner)

    ea, eb = edge(a), edge(b)
    distances = np.sqrt(((ea[:, None, :] - eb[None, :, :]) ** 2).sum(-1))
    return max(np.percentile(distances.min(1), 95), np.percentile(distances.min(0), 95))


@pytest.mark.parametrize("seed", range(4))
def test_hd95_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    a = ndimage.gaussian_filter(rng.random((48, 48)), 4) > 0.5
    b = ndimage.gaussian_filter(rng.random((48, 48)), 4) > 0.5
    assert a.any() and b.any()
    assert hd95(a, b) == pytest.approx(_brute_hd95(a, b))


def test_isic_thresholded_jaccard_zeroes_poor_images():
    assert thresholded_jaccard([0.9, 0.64, 0.7]) == pytest.approx((0.9 + 0.0 + 0.7) / 3)

