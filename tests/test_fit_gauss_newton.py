"""The Gauss-Newton fitter's hand-made derivatives and solves, each against torch's autograd or a dense solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from smplx.lbs import batch_rodrigues

from mGPT.data import fit_gauss_newton as gn
from mGPT.data.fit_check import phone_keypoints
from mGPT.data.fit_smplx import FitSettings, PoseModel, build_problem, fit_clips, objective, project


@pytest.fixture(scope="module")
def model() -> PoseModel:
    return PoseModel()


def _problem(model: PoseModel, small_sample, frames: int = 6, settings: FitSettings | None = None,
             depth: bool = True, seed: int = 0):
    """Two clips from the sample seen by the phone, and a state some way off the truth."""
    from mGPT.data.isharah import pose_dir_path, read_clip, read_split_csv, split_csv_path

    rng = np.random.default_rng(seed)
    names = read_split_csv(split_csv_path(small_sample, "test")).SENTENCE_NAME[:2]
    clips = [phone_keypoints(f"s{i}_c{i}", read_clip(pose_dir_path(small_sample, "test", name))[:frames], rng,
                             model=model) for i, name in enumerate(names)]
    if depth:
        clips[0].depth = rng.normal(0, 5, clips[0].points.shape[:2]).astype(np.float32)
    settings = settings or FitSettings()
    problem = build_problem(clips, settings, model, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    state = {key: value + 0.3 * torch.randn(value.shape, generator=generator)
             for key, value in problem.start.items()}
    state["translation"] = problem.start["translation"] + 0.05 * torch.randn(problem.start["translation"].shape,
                                                                             generator=generator)
    return problem, settings, state


def test_right_jacobian_is_the_derivative_of_rodrigues():
    theta = torch.tensor([[0.3, -0.7, 1.1], [1e-6, 0.0, 0.0], [2.5, 0.1, -0.4]], dtype=torch.float64)
    d = torch.tensor([0.2, -0.5, 0.7], dtype=torch.float64).expand(3, 3)
    eps = 1e-6
    moved = batch_rodrigues(theta + eps * d)
    predicted = batch_rodrigues(theta) @ batch_rodrigues((gn.right_jacobian(theta) @ d[..., None])[..., 0] * eps)
    assert torch.allclose(moved, predicted, atol=1e-10)
    assert not torch.allclose(moved, batch_rodrigues(theta) @ batch_rodrigues(eps * d), atol=1e-10)


def test_the_gradient_is_autograds(model, small_sample):
    problem, settings, state = _problem(model, small_sample, settings=FitSettings(front_margin=0.1))
    leaf = {key: value.clone().requires_grad_(True) for key, value in state.items()}
    objective(model, problem, settings, leaf, problem.weight).backward()
    system = gn.frame_system(gn.chain_groups(model), model, problem, settings, state, gn._pose(model, problem, state),
                             problem.weight)
    gradient = 2 * (system.gradient + gn.Smoothness(model, problem, settings).apply(gn.state_columns(state)))
    expected = gn.state_columns({key: value.grad for key, value in leaf.items()})
    assert torch.allclose(gradient, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()))


def test_the_arrow_system_is_the_gauss_newton_matrix(model, small_sample):
    """J^T W J from torch's Jacobian of the weighted 2D residuals of one frame, against the solver's blocks."""
    settings = FitSettings(huber_px=1e6, in_front=0.0, limits=0.0, body_prior=0.0, hand_prior=0.0)
    problem, settings, state = _problem(model, small_sample, frames=1, settings=settings, depth=False)
    weight = (problem.weight * 0.5 / problem.weight.sum()).sqrt()  # the robust term's weight at small residuals

    def residuals(columns: torch.Tensor) -> torch.Tensor:
        n = columns.shape[0]
        root, body = columns[:, :3], columns[:, 3:33].reshape(n, 10, 3)
        translation, hands = columns[:, 33:36], columns[:, 36:].reshape(n, 30, 3)
        _, _, marks = model.pose(root, body, hands, state["betas"][problem.signer_index])
        pixels, _ = project(marks, translation, problem.focal, problem.centre)
        return ((pixels - problem.observed) * weight[..., None])[0].reshape(-1)

    columns = gn.state_columns(state)[:1]
    jacobian = torch.autograd.functional.jacobian(residuals, columns)[:, 0]  # (2L, 126)
    system = gn.frame_system(gn.chain_groups(model), model, problem, settings, state,
                             gn._pose(model, problem, state), problem.weight)
    ours = torch.stack([system.multiply(column[None].expand(len(problem.observed), -1))[0]
                        for column in torch.eye(126)], dim=1)
    expected = jacobian.T @ jacobian
    assert torch.allclose(ours, expected, atol=1e-5 * float(expected.abs().max()))
    assert (ours[36:81, 81:] == 0).all()  # the two hands never meet


def _dense(system: gn.System, frame: int) -> torch.Tensor:
    eye = torch.eye(126)
    n = system.body.shape[0]
    return torch.stack([system.multiply(column[None].expand(n, -1))[frame] for column in eye], dim=1)


def test_the_block_inverse_solves_each_frame(model, small_sample):
    problem, settings, state = _problem(model, small_sample)
    system = gn.frame_system(gn.chain_groups(model), model, problem, settings, state,
                             gn._pose(model, problem, state), problem.weight)
    extra = 0.1 * system.diagonal() + 1e-3
    rhs = torch.randn(len(problem.observed), 126, generator=torch.Generator().manual_seed(1))
    solved = gn.BlockInverse(system, extra, fingers=True).solve(rhs)
    for frame in (0, 7):
        dense = _dense(system, frame) + torch.diag(extra[frame])
        expected = torch.linalg.solve(dense.double(), rhs[frame].double()).float()
        assert torch.allclose(solved[frame], expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()))
    body_only = gn.BlockInverse(system, extra, fingers=False).solve(rhs)
    assert (body_only[:, 36:] == 0).all()
    expected = torch.linalg.solve((_dense(system, 0) + torch.diag(extra[0]))[:36, :36].double(), rhs[0, :36].double())
    assert torch.allclose(body_only[0, :36].double(), expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()))


def test_conjugate_gradients_solve_the_coupled_system(model, small_sample, monkeypatch):
    """With enough steps, the frames' systems coupled by the smoothness are solved as one dense system is."""
    problem, settings, state = _problem(model, small_sample, frames=4)
    system = gn.frame_system(gn.chain_groups(model), model, problem, settings, state,
                             gn._pose(model, problem, state), problem.weight)
    smooth = gn.Smoothness(model, problem, settings)
    damping = 0.01 * system.diagonal() + 1e-4
    active = torch.ones(126, dtype=torch.bool)
    n = len(problem.observed)
    size = n * 126
    full = torch.zeros(size, size, dtype=torch.float64)
    for i in range(size):
        unit = torch.zeros(size)
        unit[i] = 1
        x = unit.reshape(n, 126)
        full[:, i] = (system.multiply(x) + damping * x + smooth.apply(x)).reshape(-1).double()
    expected = torch.linalg.solve(full, -system.gradient.reshape(-1).double()).reshape(n, 126)
    monkeypatch.setattr(gn, "CG_STEPS", 300)
    step = gn._conjugate_gradients(system, smooth, damping, active, fingers=True)
    assert torch.allclose(step.double(), expected, atol=1e-3 * float(expected.abs().max()))
    coupled = smooth.apply(expected.float()).abs().max()
    assert coupled > 0.01 * system.gradient.abs().max()  # the smoothness really couples the frames here


def test_the_shape_step_lowers_each_signers_loss(model, small_sample):
    problem, settings, state = _problem(model, small_sample, depth=False)
    state["betas"] = torch.zeros_like(state["betas"])
    posed = gn._pose(model, problem, state)
    before = gn.frame_losses(model, problem, settings, state, problem.weight, posed.as_tuple())
    moved, _, better = gn._shape_step(model, problem, settings, state, posed, problem.weight,
                                      torch.full((2,), 1e-3))
    after = gn.frame_losses(model, problem, settings, moved, problem.weight, gn._pose(model, problem, moved).as_tuple())
    assert better.all() and not torch.equal(moved["betas"], state["betas"])
    for signer in (0, 1):
        rows = problem.signer_index == signer
        assert after[rows].sum() < before[rows].sum()


def test_gauss_newton_fits_closer_than_lbfgs_in_fewer_evaluations(model, small_sample):
    """The default solver against the first one at its own defaults, on a short clip: lower reprojection."""
    from mGPT.data.isharah import pose_dir_path, read_clip, read_split_csv, split_csv_path

    name = read_split_csv(split_csv_path(small_sample, "test")).SENTENCE_NAME[1]
    clip = phone_keypoints("00_0001", read_clip(pose_dir_path(small_sample, "test", name))[:16],
                           np.random.default_rng(3), model=model)
    gauss_newton = fit_clips([clip], FitSettings(), model=model)[0].reprojection_px
    lbfgs = fit_clips([clip], FitSettings(solver="lbfgs", body_iterations=100, iterations=200), model=model)[0]
    for part in ("body", "lhand", "rhand"):
        assert gauss_newton[part] < lbfgs.reprojection_px[part], (part, gauss_newton, lbfgs.reprojection_px)


def test_finger_losses_are_each_fingers_share_of_the_frame_losses(model, small_sample):
    from mGPT.data.fit_smplx import frame_losses

    problem, settings, state = _problem(model, small_sample)
    groups = gn.chain_groups(model)
    moved = dict(state, hands=state["hands"].clone())
    moved["hands"][:, 21:24] += 0.4  # the right hand's second finger (finger group 7)
    before = gn.finger_losses(model, problem, settings, state, gn._pose(model, problem, state), groups[1])
    after = gn.finger_losses(model, problem, settings, moved, gn._pose(model, problem, moved), groups[1])
    changed = (after - before).abs().sum(0) > 0
    assert changed.tolist() == [g == 7 for g in range(10)]
    frame_change = frame_losses(model, problem, settings, moved, problem.weight) - frame_losses(
        model, problem, settings, state, problem.weight)
    assert torch.allclose(frame_change, (after - before)[:, 7], rtol=1e-4, atol=1e-7)


def test_curled_hands_bend_every_finger_but_the_thumb(model):
    total = gn.curled_hands(model, 1.0) + model.hand_mean  # (30, 3)
    for k, name in enumerate(model.free[gn.BODY_SLOTS:]):
        if "Thumb" in name:
            assert torch.equal(total[k], model.hand_mean[k])
        else:
            bend = gn.FIST_BEND[int(name[-1]) - 1]
            assert total[k, 2].item() == pytest.approx(-bend if name.startswith("L_") else bend)
    assert torch.equal(gn.curled_hands(model, 0.0), torch.zeros(30, 3))


def test_a_fist_is_found_from_the_curled_start(model):
    """A fist seen by the phone: from the mean hand alone the fingers end in a worse basin; with the curled
    start each finger keeps whichever start ends lower, so it is never worse and here much better."""
    from mGPT.data.fit_smplx import to_smplx

    frames = 8
    hands = (gn.curled_hands(model, 0.9) + 0.05 * torch.randn(30, 3, generator=torch.Generator().manual_seed(0)))
    body = torch.zeros(frames, 10, 3)
    body[:, 4:6] = torch.tensor([[0.0, 0.0, -1.1], [0.0, 0.0, 1.1]])  # shoulders: arms down
    body[:, 6:8] = torch.tensor([[0.0, -1.8, 0.0], [0.0, 1.8, 0.0]])  # elbows bent, hands up in front
    truth = to_smplx(torch.zeros(frames, 3), body, hands.expand(frames, 30, 3), torch.zeros(frames, 10)).numpy()
    clip = phone_keypoints("s0_fist", truth, np.random.default_rng(0), model=model, noise_px=0.5, drop_hand=0.0,
                           offset_jitter=0.0, tip_stretch=0.0)
    errors = {}
    for curls in ((), (1.0,)):
        fit = fit_clips([clip], FitSettings(finger_curls=curls, body_iterations=60), model=model)[0]
        errors[curls] = fit.reprojection_px["lhand"] + fit.reprojection_px["rhand"]
    assert errors[(1.0,)] < 0.7 * errors[()], errors


def test_fingers_alone_give_the_finger_blocks_of_the_whole_system(model, small_sample):
    problem, settings, state = _problem(model, small_sample)
    _, fingers = gn.chain_groups(model)
    lin = gn.linearise(model, problem, settings, state, gn._pose(model, problem, state), problem.weight)
    whole_h, whole_g = gn._group_system(fingers, problem, settings, lin, state["translation"])
    alone_h, alone_g = gn._group_system(gn.fingers_alone(fingers), problem, settings, lin, state["translation"])
    assert alone_h.shape == (len(problem.observed), 10, 9, 9) and alone_g.shape == (len(problem.observed), 10, 9)
    expected = whole_h[:, :, gn.GROUP_FINGER][:, :, :, gn.GROUP_FINGER]
    assert torch.allclose(alone_h, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))
    assert torch.allclose(alone_g, whole_g[:, :, gn.GROUP_FINGER], rtol=1e-5, atol=1e-7)
    assert alone_h.abs().amax(dim=(0, 2, 3)).min() > 0  # every finger has rows here (depth included)


def test_the_marks_system_gradient_is_autograds(model, small_sample):
    settings = FitSettings(mark_prior=3e4)
    problem, settings, state = _problem(model, small_sample, settings=settings)
    shifts = 0.01 * torch.randn(state["betas"].shape[0], problem.calibrated.shape[0], 3,
                                generator=torch.Generator().manual_seed(2))
    state["marks"] = shifts * problem.calibrated[:, None]
    leaf = dict(state, marks=state["marks"].clone().requires_grad_(True))
    objective(model, problem, settings, leaf, problem.weight).backward()
    hessian, gradient = gn.marks_system(model, problem, settings, state, gn._pose(model, problem, state),
                                        problem.weight)
    expected = leaf["marks"].grad[:, problem.calibrated]
    ours = 2 * gradient[:, problem.calibrated]
    assert torch.allclose(ours, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()))
    assert hessian.shape == (state["betas"].shape[0], problem.calibrated.shape[0], 3, 3)


def test_calibration_follows_landmarks_placed_off_the_model(model):
    """Landmarks 2 cm off where the model puts them: each signer's calibration follows them (the body and face
    fit closer), and never shifts a hand landmark."""
    from mGPT.data.fit_smplx import to_smplx

    frames = 12
    body = torch.zeros(frames, 10, 3)
    body[:, 4:6] = torch.tensor([[0.0, 0.0, -1.1], [0.0, 0.0, 1.1]])
    body[:, 6:8] = torch.tensor([[0.0, -1.5, 0.0], [0.0, 1.5, 0.0]])
    body[:, 3, 1] = torch.linspace(-0.3, 0.3, frames)  # the head turns
    truth = to_smplx(torch.zeros(frames, 3), body, torch.zeros(frames, 30, 3), torch.zeros(frames, 10)).numpy()
    clip = phone_keypoints("s0_off", truth, np.random.default_rng(3), model=model, noise_px=0.5, drop_hand=0.0,
                           offset_jitter=0.02, tip_stretch=0.0)
    errors = {}
    for prior in (0.0, 3e4):
        fit = fit_clips([clip], FitSettings(mark_prior=prior, body_iterations=60), model=model)[0]
        errors[prior] = fit.reprojection_px["body"] + fit.reprojection_px["face"]
        if prior:
            hands = ~torch.as_tensor([m.part in ("body", "face") for m in gn.LANDMARKS]).numpy()
            assert (fit.mark_shift[hands] == 0).all() and np.abs(fit.mark_shift).max() > 0.005
        else:
            assert fit.mark_shift is None
    assert errors[3e4] < 0.6 * errors[0.0], errors
