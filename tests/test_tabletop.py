"""Unit tests for the simulated push-button scene (sim/tabletop.py): motion, button, gripper, images."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from sim.tabletop import TabletopArm, TabletopConfig

TICK_S = 0.1    # the sim_arm node's default control period (10 Hz)


@pytest.fixture
def arm() -> Iterator[TabletopArm]:
    with TabletopArm() as scene:
        yield scene


def move_to(arm: TabletopArm, goal: np.ndarray, gripper_open: bool, ticks: int = 40) -> None:
    """A scripted policy: proportional velocity commands toward `goal`, at most 0.2 m/s per axis."""
    for _ in range(ticks):
        velocity = np.clip(5.0 * (goal - arm.ee_position()), -0.2, 0.2)
        arm.apply(velocity, gripper_open, TICK_S)


def press_button(arm: TabletopArm, gripper_open: bool) -> None:
    """Hover 5 cm above the button, then push straight down at 0.1 m/s for a second."""
    move_to(arm, arm.button_position() + [0.0, 0.0, 0.05], gripper_open)
    for _ in range(10):
        arm.apply(np.array([0.0, 0.0, -0.1]), gripper_open, TICK_S)


# ---------------------------------------------------------------------- motion

@pytest.mark.parametrize('direction', [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)])
def test_velocity_moves_ee_by_speed_times_duration(arm: TabletopArm, direction: tuple[float, ...]) -> None:
    direction = np.asarray(direction)
    start = arm.ee_position()

    arm.apply(0.1 * direction, True, TICK_S)        # one tick from rest: ~1 cm
    moved = arm.ee_position() - start
    assert moved @ direction == pytest.approx(0.01, rel=0.2)
    assert np.linalg.norm(moved - (moved @ direction) * direction) < 1e-4

    for _ in range(9):                               # a second in total: tracking has settled
        arm.apply(0.1 * direction, True, TICK_S)
    assert arm.ee_position() - start == pytest.approx(0.1 * direction, abs=0.002)


def test_zero_velocity_keeps_ee_still(arm: TabletopArm) -> None:
    start = arm.ee_position()
    for _ in range(10):
        arm.apply(np.zeros(3), True, TICK_S)
    assert np.linalg.norm(arm.ee_position() - start) < 1e-3


def test_sim_time_advances_by_duration(arm: TabletopArm) -> None:
    assert arm.sim_time == 0.0
    arm.apply(np.zeros(3), True, TICK_S)
    arm.apply(np.zeros(3), True, 0.25)
    assert arm.sim_time == pytest.approx(0.35)


def test_orientation_stays_pointing_down(arm: TabletopArm) -> None:
    press_button(arm, gripper_open=False)            # contact must not tilt the gripper
    quaternion = arm.ee_quaternion()
    assert quaternion.shape == (4,)
    assert np.abs(quaternion) == pytest.approx([0.0, 1.0, 0.0, 0.0], abs=1e-6)


def test_target_stays_inside_the_scene_box(arm: TabletopArm) -> None:
    high = arm.config.target_high
    for _ in range(30):
        arm.apply(np.array([1.0, 1.0, 1.0]), True, TICK_S)
    assert np.all(arm.ee_position() <= np.asarray(high) + 1e-3)

    for _ in range(30):                              # straight into the table
        arm.apply(np.array([0.0, 0.0, -1.0]), True, TICK_S)
    assert arm.ee_position()[2] == pytest.approx(0.0, abs=2e-3)


# ---------------------------------------------------------------------- button

def test_button_released_at_reset(arm: TabletopArm) -> None:
    assert arm.button_depth() == pytest.approx(0.0, abs=1e-6)
    assert not arm.button_pressed()


@pytest.mark.parametrize('gripper_open', [True, False])
def test_scripted_descent_presses_button(arm: TabletopArm, gripper_open: bool) -> None:
    move_to(arm, arm.button_position() + [0.0, 0.0, 0.05], gripper_open)
    assert not arm.button_pressed()                  # hovering does not count

    press_button(arm, gripper_open)
    assert arm.button_pressed()
    assert arm.button_depth() < 0.015                # stopped by its range, not crushed through it
    assert arm.ee_position()[2] == pytest.approx(arm.button_position()[2], abs=2e-3)  # fingertips on the cap

    for _ in range(5):                               # lift off: the spring pushes the cap back up
        arm.apply(np.array([0.0, 0.0, 0.1]), gripper_open, TICK_S)
    assert not arm.button_pressed()
    assert arm.button_depth() == pytest.approx(0.0, abs=1e-3)


# ---------------------------------------------------------------------- gripper

def test_gripper_closes_and_opens(arm: TabletopArm) -> None:
    assert arm.gripper_opening() == pytest.approx(1.0, abs=0.01)
    for _ in range(10):
        arm.apply(np.zeros(3), False, TICK_S)
    assert arm.gripper_opening() == pytest.approx(0.0, abs=0.02)
    for _ in range(10):
        arm.apply(np.zeros(3), True, TICK_S)
    assert arm.gripper_opening() == pytest.approx(1.0, abs=0.02)


# ---------------------------------------------------------------------- images

@pytest.mark.parametrize('camera', ['front', 'wrist'])
def test_render_returns_rgb_image_of_configured_size(camera: str) -> None:
    with TabletopArm(TabletopConfig(image_height=48, image_width=64)) as arm:
        image = arm.render(camera)
    assert image.shape == (48, 64, 3)
    assert image.dtype == np.uint8
    assert image.std() > 5.0                         # not a constant (black or blank) frame


@pytest.mark.parametrize('camera', ['front', 'wrist'])
def test_render_changes_when_gripper_moves(arm: TabletopArm, camera: str) -> None:
    before = arm.render(camera)
    for _ in range(5):
        arm.apply(np.array([0.1, 0.1, -0.1]), True, TICK_S)
    after = arm.render(camera)
    assert np.mean(np.abs(after.astype(int) - before.astype(int))) > 0.5


def test_unknown_camera_is_rejected(arm: TabletopArm) -> None:
    with pytest.raises(ValueError, match='camera'):
        arm.render('top')


# ---------------------------------------------------------------------- reset and seeding

def test_reset_restores_home(arm: TabletopArm) -> None:
    press_button(arm, gripper_open=False)
    arm.reset()
    assert arm.ee_position() == pytest.approx(arm.config.home_ee, abs=1e-9)
    assert arm.gripper_opening() == pytest.approx(1.0)
    assert arm.button_depth() == pytest.approx(0.0, abs=1e-9)
    assert arm.sim_time == 0.0


def test_same_seed_gives_identical_state_and_pixels() -> None:
    config = TabletopConfig(button_jitter_m=0.03)
    episodes = []
    with TabletopArm(config) as first, TabletopArm(config) as second:
        for arm in (first, second, first):          # two scenes, and one scene reused
            arm.reset(seed=7)
            press_button(arm, gripper_open=False)
            episodes.append((arm.ee_position(), arm.button_position(), arm.gripper_opening(),
                             arm.render('front'), arm.render('wrist')))
    for episode in episodes[1:]:
        for value, reference in zip(episode, episodes[0]):
            np.testing.assert_array_equal(value, reference)


def test_seeds_jitter_the_button_within_bounds() -> None:
    config = TabletopConfig(button_jitter_m=0.03)
    with TabletopArm(config) as arm:
        positions = []
        for seed in (1, 2, 3):
            arm.reset(seed=seed)
            positions.append(arm.button_position()[:2])
    assert len({tuple(p) for p in positions}) == 3
    for xy in positions:
        assert np.all(np.abs(xy - np.asarray(config.button_xy)) <= 0.03)


def test_no_jitter_puts_the_button_at_its_nominal_place(arm: TabletopArm) -> None:
    arm.reset(seed=5)
    assert arm.button_position()[:2] == pytest.approx(arm.config.button_xy)


# ---------------------------------------------------------------------- invalid commands

@pytest.mark.parametrize('velocity, duration, problem', [
    ([np.nan, 0.0, 0.0], TICK_S, 'finite'),
    ([np.inf, 0.0, 0.0], TICK_S, 'finite'),
    ([0.1, 0.0], TICK_S, 'shape'),
    ([[0.1, 0.0, 0.0]], TICK_S, 'shape'),
    ([0.1, 0.0, 0.0], 0.0, 'duration'),
    ([0.1, 0.0, 0.0], -0.1, 'duration'),
    ([0.1, 0.0, 0.0], np.nan, 'duration'),
])
def test_invalid_command_raises(arm: TabletopArm, velocity: list, duration: float, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        arm.apply(np.array(velocity), True, duration)
    assert arm.sim_time == 0.0                       # nothing was stepped


def test_invalid_config_raises() -> None:
    with pytest.raises(ValueError, match='physics_dt'):
        TabletopConfig(physics_dt=0.0)
    with pytest.raises(ValueError, match='home_ee'):
        TabletopConfig(home_ee=(0.45, -0.08, 2.0))
