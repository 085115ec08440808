"""Similarity Procrustes against the textbook SVD solution (Umeyama), computed here one set at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mGPT.metrics.procrustes import best_rotation, procrustes_align


def svd_align(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(J, 3) pred moved onto ref: rotation from the SVD of the cross-covariance with the reflection
    removed, scale tr(R H) / |pred|^2, then the means matched."""
    pred_mean, ref_mean = pred.mean(0), ref.mean(0)
    a, b = pred - pred_mean, ref - ref_mean
    u, _, vt = np.linalg.svd(a.T @ b)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    rotation = vt.T @ flip @ u.T
    scale = np.trace(rotation @ a.T @ b) / (a**2).sum()
    return scale * a @ rotation.T + ref_mean


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("joints", [3, 7, 16, 21])
def test_matches_svd_solution(joints):
    rng = np.random.default_rng(joints)
    pred = rng.normal(size=(300, joints, 3))
    ref = rng.normal(size=(300, joints, 3))
    ref[:100] = pred[:100] @ rng.normal(size=(3, 3)) + rng.normal(size=3)  # related by a general linear map
    pred[100:150, :, 2] = 0.0  # planar sets
    aligned = procrustes_align(torch.as_tensor(pred), torch.as_tensor(ref)).numpy()
    expected = np.stack([svd_align(p, r) for p, r in zip(pred, ref, strict=True)])
    np.testing.assert_allclose(aligned, expected, atol=1e-10)


def test_recovers_an_exact_similarity_transform():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(50, 7, 3))
    rotations = np.stack([random_rotation(rng) for _ in range(50)])  # (50, 3, 3)
    scales = rng.uniform(0.5, 2.0, size=(50, 1, 1))
    ref = scales * np.einsum("nab,nkb->nka", rotations, pred) + rng.normal(size=(50, 1, 3))
    aligned = procrustes_align(torch.as_tensor(pred), torch.as_tensor(ref)).numpy()
    np.testing.assert_allclose(aligned, ref, atol=1e-10)

    centred_pred = pred - pred.mean(1, keepdims=True)
    centred_ref = ref - ref.mean(1, keepdims=True)
    cross_cov = torch.as_tensor(np.einsum("nka,nkb->abn", centred_pred, centred_ref))  # (3, 3, 50)
    found, trace = best_rotation(cross_cov)
    np.testing.assert_allclose(found.permute(2, 0, 1).numpy(), rotations, atol=1e-10)
    # the maximum tr(R H) = scale * |pred|^2 for an exact fit
    np.testing.assert_allclose(trace.numpy(), scales[:, 0, 0] * (centred_pred**2).sum((1, 2)), rtol=1e-12)


def test_half_turns_whose_quaternion_has_no_scalar_part():
    # q = (0, n) for a turn by pi about n: the adjugate's first column vanishes and another must be used
    rng = np.random.default_rng(3)
    axes = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 2.0, -2.0]])
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    rotations = 2 * np.einsum("na,nb->nab", axes, axes) - np.eye(3)  # (4, 3, 3)
    pred = rng.normal(size=(4, 7, 3))
    ref = np.einsum("nab,nkb->nka", rotations, pred)
    aligned = procrustes_align(torch.as_tensor(pred), torch.as_tensor(ref)).numpy()
    np.testing.assert_allclose(aligned, ref, atol=1e-10)


def test_never_reflects():
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(40, 7, 3))
    mirrored = pred * np.array([1.0, 1.0, -1.0])  # best orthogonal fit would be the mirror
    aligned = procrustes_align(torch.as_tensor(pred), torch.as_tensor(mirrored)).numpy()
    expected = np.stack([svd_align(p, r) for p, r in zip(pred, mirrored, strict=True)])
    np.testing.assert_allclose(aligned, expected, atol=1e-10)
    assert np.abs(aligned - mirrored).max() > 0.1  # a rotation cannot reproduce a mirror image

    cross_cov = torch.as_tensor(rng.normal(size=(3, 3, 4, 5)))  # any batch shape after the 3x3
    rotation = best_rotation(cross_cov)[0].permute(2, 3, 0, 1)  # (4, 5, 3, 3)
    torch.testing.assert_close(rotation @ rotation.transpose(-1, -2), torch.eye(3, dtype=torch.float64)
                               .expand(4, 5, 3, 3), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(4, 5, dtype=torch.float64))


def test_upper_bound_only_changes_the_start():
    rng = np.random.default_rng(2)
    pred = torch.as_tensor(rng.normal(size=(500, 7, 3)))
    ref = torch.as_tensor(rng.normal(size=(500, 7, 3)))
    ref[:250] = pred[:250] * 1.2 + 0.01 * torch.as_tensor(rng.normal(size=(250, 7, 3)))  # near-exact fits
    pred, ref = pred - pred.mean(1, keepdim=True), ref - ref.mean(1, keepdim=True)
    cross_cov = torch.einsum("nka,nkb->abn", pred, ref)
    bound = (pred.square().sum((1, 2)) * ref.square().sum((1, 2))).sqrt()  # Cauchy-Schwarz
    plain, bounded = best_rotation(cross_cov), best_rotation(cross_cov, upper_bound=bound)
    torch.testing.assert_close(bounded[0], plain[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(bounded[1], plain[1], atol=1e-12, rtol=0)


def test_degenerate_inputs_stay_finite():
    rotation, trace = best_rotation(torch.zeros(3, 3, 2, dtype=torch.float64))
    assert torch.equal(rotation, torch.eye(3, dtype=torch.float64)[:, :, None].expand(3, 3, 2))
    assert torch.equal(trace, torch.zeros(2, dtype=torch.float64))
    ref = torch.randn(1, 5, 3, dtype=torch.float64)
    collapsed = torch.ones(1, 5, 3, dtype=torch.float64)  # every joint on one point: no shape to fit
    aligned = procrustes_align(collapsed, ref)
    torch.testing.assert_close(aligned, ref.mean(1, keepdim=True).expand(1, 5, 3))
    assert procrustes_align(torch.zeros(0, 5, 3), torch.zeros(0, 5, 3)).shape == (0, 5, 3)
