"""Similarity Procrustes: the rotation, uniform scale and translation that map one point set onto
another in the least-squares sense (no reflection), batched in torch.

The rotation is Horn's unit quaternion: the top eigenvector of a 4x4 symmetric "key" matrix built from
the 3x3 cross-covariance. As in Theobald's QCP method, the top eigenvalue comes from Newton's method on
the characteristic polynomial and the eigenvector from a column of the adjugate of (key - lambda I).
That is a fixed recipe of elementwise arithmetic on the nine cross-covariance entries, so it solves
millions of problems at once (DTW aligns every generated frame to every reference frame), where a
batched SVD would run one LAPACK call per 3x3 matrix. In float64 it matches the SVD solution to ~1e-12.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NEWTON_TOLERANCE = 1e-14  # on the eigenvalue of the unit-norm problem, whose largest root is <= sqrt(3)
NEWTON_MAX_STEPS = 100  # the start is an upper bound, so Newton descends monotonically; ~5-20 steps


def _products(*terms: tuple[float, Tensor, Tensor]) -> Tensor:
    """sum of sign * a * b over (sign, a, b) terms, as one multiply and fused multiply-adds."""
    (sign, a, b), *rest = sorted(terms, key=lambda term: -term[0])  # start from a positive term
    total = a * b if sign > 0 else -(a * b)
    for sign, a, b in rest:
        total.addcmul_(a, b, value=sign)
    return total


def _minors(m: list[list[Tensor]]) -> tuple[list[Tensor], list[Tensor]]:
    """The six 2x2 minors of rows 0-1 and of rows 2-3 of a 4x4 matrix (Laplace expansion by row pairs),
    columns ordered (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)."""
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    return ([_products((1, m[0][a], m[1][b]), (-1, m[0][b], m[1][a])) for a, b in pairs],
            [_products((1, m[2][a], m[3][b]), (-1, m[2][b], m[3][a])) for a, b in pairs])


def _det4(m: list[list[Tensor]]) -> Tensor:
    (s01, s02, s03, s12, s13, s23), (c01, c02, c03, c12, c13, c23) = _minors(m)
    return _products((1, s01, c23), (-1, s02, c13), (1, s03, c12),
                     (1, s12, c03), (-1, s13, c02), (1, s23, c01))


def _adjugate_symmetric(m: list[list[Tensor]]) -> list[list[Tensor]]:
    """Adjugate of a symmetric 4x4 matrix (itself symmetric), from the same 2x2 minors."""
    (s01, s02, s03, s12, s13, s23), (c01, c02, c03, c12, c13, c23) = _minors(m)
    a00 = _products((1, m[1][1], c23), (-1, m[1][2], c13), (1, m[1][3], c12))
    a01 = _products((-1, m[0][1], c23), (1, m[0][2], c13), (-1, m[0][3], c12))
    a02 = _products((1, m[3][1], s23), (-1, m[3][2], s13), (1, m[3][3], s12))
    a03 = _products((-1, m[2][1], s23), (1, m[2][2], s13), (-1, m[2][3], s12))
    a11 = _products((1, m[0][0], c23), (-1, m[0][2], c03), (1, m[0][3], c02))
    a12 = _products((-1, m[3][0], s23), (1, m[3][2], s03), (-1, m[3][3], s02))
    a13 = _products((1, m[2][0], s23), (-1, m[2][2], s03), (1, m[2][3], s02))
    a22 = _products((1, m[3][0], s13), (-1, m[3][1], s03), (1, m[3][3], s01))
    a23 = _products((-1, m[2][0], s13), (1, m[2][1], s03), (-1, m[2][3], s01))
    a33 = _products((1, m[2][0], s12), (-1, m[2][1], s02), (1, m[2][2], s01))
    return [[a00, a01, a02, a03], [a01, a11, a12, a13], [a02, a12, a22, a23], [a03, a13, a23, a33]]


def best_rotation(cross_cov: Tensor, upper_bound: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(3, 3, *batch) H = sum_k pred_k ref_k^T of centred points -> the rotation R (3, 3, *batch),
    det +1, maximising sum_k ref_k . (R pred_k) = tr(R H), and that maximum (*batch).

    The 3x3 axes lead so each entry is one contiguous block. `upper_bound` (*batch), any bound on the
    maximum such as |pred| |ref| (Cauchy-Schwarz), starts Newton's method closer: it only saves steps.
    """
    entries = [cross_cov[a, b] for a in range(3) for b in range(3)]
    norm = _products(*[(1, e, e) for e in entries]).sqrt_()  # (*batch) Frobenius norm
    informative = norm > 0
    inv_norm = torch.where(informative, norm, 1.0).reciprocal_()
    # unit norm makes the polynomial's lambda^2 coefficient -2 and the Newton tolerance absolute
    h = cross_cov * inv_norm
    (xx, xy, xz), (yx, yy, yz), (zx, zy, zz) = h
    key = [[xx + yy + zz, yz - zy, zx - xz, xy - yx],
           [yz - zy, xx - yy - zz, xy + yx, zx + xz],
           [zx - xz, xy + yx, yy - xx - zz, yz + zy],
           [xy - yx, zx + xz, yz + zy, zz - xx - yy]]
    # det(key - lambda I) = lambda^4 - 2 lambda^2 + c1 lambda + c0. Its largest root, s1 + s2 +- s3 of
    # the singular values of h, is the maximum of tr(R h), at most sqrt(3); above that root the quartic
    # is increasing and convex, so Newton's method from any upper bound descends monotonically onto it.
    det_h = _products((1, xx, _products((1, yy, zz), (-1, yz, zy))),
                      (-1, xy, _products((1, yx, zz), (-1, yz, zx))),
                      (1, xz, _products((1, yx, zy), (-1, yy, zx))))
    c1 = -8.0 * det_h
    c0 = _det4(key)
    top = torch.full_like(norm, math.sqrt(3.0))
    if upper_bound is not None:
        # a hair above the bound so rounding cannot start Newton below the root
        top = torch.minimum(top, upper_bound * inv_norm * (1.0 + 1e-12))
    for _ in range(NEWTON_MAX_STEPS):
        top2 = top * top
        value = torch.addcmul(c0, c1, top).addcmul_(top2 - 2.0, top2)
        slope = torch.addcmul(c1, top2 - 1.0, top, value=4.0)
        # a flat slope only at a double root reached exactly: stay there
        step = value / torch.where(slope > 0, slope, torch.inf)
        top.sub_(step)
        if not bool((step.abs() > NEWTON_TOLERANCE).any()):
            break

    shifted = [[key[i][j] - top if i == j else key[i][j] for j in range(4)] for i in range(4)]
    adjugate = _adjugate_symmetric(shifted)
    # adj = c q q^T for a simple top eigenvalue: its column with the largest diagonal entry is the
    # best-conditioned multiple of the quaternion q = (w, x, y, z)
    quat, largest = adjugate[0], adjugate[0][0].abs()
    for i in range(1, 4):
        diagonal = adjugate[i][i].abs()
        larger = diagonal > largest
        largest = torch.where(larger, diagonal, largest)
        quat = [torch.where(larger, new, old) for new, old in zip(adjugate[i], quat, strict=True)]
    w, x, y, z = quat
    length2 = _products((1, w, w), (1, x, x), (1, y, y), (1, z, z))
    # nothing to fit (H = 0) or no direction found: the identity quaternion
    valid = informative & (length2 > 0)
    w = torch.where(valid, w, 1.0)
    x, y, z = (torch.where(valid, v, 0.0) for v in (x, y, z))
    twice = torch.where(valid, length2, 1.0).reciprocal_().mul_(2.0)  # q need not be normalised
    rotation = torch.empty_like(cross_cov)
    one = torch.ones((), dtype=h.dtype, device=h.device)
    xx2, yy2, zz2 = x * x, y * y, z * z
    torch.addcmul(one, yy2 + zz2, twice, value=-1.0, out=rotation[0, 0])
    torch.addcmul(one, xx2 + zz2, twice, value=-1.0, out=rotation[1, 1])
    torch.addcmul(one, xx2 + yy2, twice, value=-1.0, out=rotation[2, 2])
    torch.mul(_products((1, x, y), (-1, w, z)), twice, out=rotation[0, 1])
    torch.mul(_products((1, x, z), (1, w, y)), twice, out=rotation[0, 2])
    torch.mul(_products((1, x, y), (1, w, z)), twice, out=rotation[1, 0])
    torch.mul(_products((1, y, z), (-1, w, x)), twice, out=rotation[1, 2])
    torch.mul(_products((1, x, z), (-1, w, y)), twice, out=rotation[2, 0])
    torch.mul(_products((1, y, z), (1, w, x)), twice, out=rotation[2, 1])
    return rotation, top * norm


def procrustes_align(pred: Tensor, ref: Tensor) -> Tensor:
    """(N, J, 3) pred, ref -> (N, J, 3) pred moved by the best rotation, scale and translation onto ref."""
    pred_mean, ref_mean = pred.mean(-2, keepdim=True), ref.mean(-2, keepdim=True)  # (N, 1, 3)
    pred_centred, ref_centred = pred - pred_mean, ref - ref_mean
    cross_cov = torch.einsum("nka,nkb->abn", pred_centred, ref_centred)  # (3, 3, N)
    rotation, trace = best_rotation(cross_cov)  # (3, 3, N), (N,)
    rotated = torch.einsum("abn,nkb->nka", rotation, pred_centred)  # (N, J, 3)
    spread = pred_centred.square().sum((-2, -1))  # (N,)
    # the optimal scale tr(R H) / |pred|^2; a collapsed pred (all joints on one point) gets scale 0
    scale = trace / torch.where(spread > 0, spread, 1.0)
    return scale[:, None, None] * rotated + ref_mean
