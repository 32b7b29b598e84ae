"""The simulated Panda's motion API (sim/robot.py through sim.scene.LampScene): the one motion function
shared by the gym env and the ROS sim_arm node, on a real MuJoCo scene."""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import mujoco
import numpy as np
import pytest

from sim.config import SceneConfig
from sim.robot import TCP_DOWN_QUAT, ArmConfig, gym_hil_panda_xml
from sim.scene import LampScene

TICK_S = 0.1


@pytest.fixture(scope='module')
def scene() -> Iterator[LampScene]:
    scene = LampScene('push_button', SceneConfig(image_height=48, image_width=64))
    yield scene
    scene.close()


@pytest.fixture
def fresh(scene: LampScene) -> LampScene:
    scene.reset(seed=3)
    return scene


def table_force(scene: LampScene) -> float:
    force, total = np.zeros(6), 0.0
    table = scene.model.geom('table').id
    for i, contact in enumerate(scene.data.contact[:scene.data.ncon]):
        if table in (contact.geom1, contact.geom2):
            mujoco.mj_contactForce(scene.model, scene.data, i, force)
            total += force[0]
    return total


def test_reset_puts_the_tcp_at_home_pointing_down(fresh: LampScene) -> None:
    assert fresh.ee_position() == pytest.approx(fresh.config.arm.home_tcp, abs=1e-6)
    assert np.abs(fresh.ee_quaternion()) == pytest.approx(TCP_DOWN_QUAT, abs=1e-6)
    assert fresh.gripper_opening() == pytest.approx(1.0, abs=0.01)
    assert fresh.sim_time == 0.0


@pytest.mark.parametrize('direction', [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)])
def test_velocity_moves_the_tcp_by_speed_times_duration(fresh: LampScene, direction: tuple[float, ...]) -> None:
    direction = np.asarray(direction)
    start = fresh.ee_position()
    for _ in range(10):                                   # 1 s at 0.1 m/s
        fresh.apply_velocity(0.1 * direction, True, TICK_S)
    moved = fresh.ee_position() - start
    assert moved @ direction == pytest.approx(0.1, abs=0.005)
    assert np.linalg.norm(moved - (moved @ direction) * direction) < 0.002
    assert fresh.sim_time == pytest.approx(1.0)


def test_zero_velocity_holds_still(fresh: LampScene) -> None:
    for _ in range(3):
        fresh.apply_velocity(np.array([0.2, 0.0, -0.2]), True, TICK_S)
    fresh.apply_velocity(np.zeros(3), True, 0.3)          # settle
    held = fresh.ee_position()
    fresh.apply_velocity(np.zeros(3), True, 1.0)
    assert np.linalg.norm(fresh.ee_position() - held) < 5e-4


def test_tcp_never_rises_above_its_height_at_reset(fresh: LampScene) -> None:
    home_z = fresh.ee_position()[2]
    for _ in range(5):
        fresh.apply_velocity(np.array([0.0, 0.0, 0.3]), True, TICK_S)
    assert fresh.ee_position()[2] <= home_z + 1e-3
    for _ in range(3):
        fresh.apply_velocity(np.array([0.0, 0.0, -0.3]), True, TICK_S)
    for _ in range(10):
        fresh.apply_velocity(np.array([0.1, 0.0, 0.3]), True, TICK_S)
    assert fresh.ee_position()[2] <= home_z + 2e-3


def test_height_cap_can_be_turned_off() -> None:
    scene = LampScene('push_button', SceneConfig(image_height=32, image_width=32, arm=ArmConfig(height_cap=False)))
    scene.reset(seed=0)
    home_z = scene.ee_position()[2]
    for _ in range(3):
        scene.apply_velocity(np.array([0.0, 0.0, 0.2]), True, TICK_S)
    scene.close()
    assert scene.ee_position()[2] > home_z + 0.04


def test_pushing_into_the_table_is_force_limited_and_keeps_orientation(fresh: LampScene) -> None:
    for _ in range(20):                                   # 2 s straight down at full speed
        fresh.apply_velocity(np.array([0.0, 0.0, -0.3]), False, TICK_S)
    assert 0.0 < fresh.ee_position()[2] < 0.03            # closed fingertips on the table, TCP above it
    assert table_force(fresh) <= fresh.config.arm.max_force_n * 1.1
    assert np.abs(fresh.ee_quaternion()) == pytest.approx(TCP_DOWN_QUAT, abs=1e-3)
    pressed_z = fresh.ee_position()[2]
    for _ in range(5):                                    # no wind-up: it lifts off at once
        fresh.apply_velocity(np.array([0.0, 0.0, 0.1]), False, TICK_S)
    assert fresh.ee_position()[2] > pressed_z + 0.025, (pressed_z, fresh.ee_position())   # 5 cm asked


def test_gripper_closes_and_opens(fresh: LampScene) -> None:
    for _ in range(5):
        fresh.apply_velocity(np.zeros(3), False, TICK_S)
    assert fresh.gripper_opening() < 0.05
    for _ in range(5):
        fresh.apply_velocity(np.zeros(3), True, TICK_S)
    assert fresh.gripper_opening() > 0.95


@pytest.mark.parametrize('velocity, duration, problem', [
    ([np.nan, 0.0, 0.0], TICK_S, 'finite'),
    ([np.inf, 0.0, 0.0], TICK_S, 'finite'),
    ([0.1, 0.0], TICK_S, 'shape'),
    ([[0.1, 0.0, 0.0]], TICK_S, 'shape'),
    ([0.1, 0.0, 0.0], 0.0, 'duration'),
    ([0.1, 0.0, 0.0], np.nan, 'duration'),
])
def test_invalid_motion_commands_raise(fresh: LampScene, velocity: list, duration: float, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        fresh.apply_velocity(np.array(velocity), True, duration)
    assert fresh.sim_time == 0.0                          # nothing was stepped


def test_scene_must_be_reset_before_use() -> None:
    scene = LampScene('push_button', SceneConfig(image_height=32, image_width=32))
    with pytest.raises(RuntimeError, match='reset'):
        scene.ee_position()
    scene.close()


def test_unknown_camera_and_task_are_rejected(fresh: LampScene) -> None:
    with pytest.raises(ValueError, match='camera'):
        fresh.render('top')
    with pytest.raises(ValueError, match='unknown task'):
        LampScene('fold_laundry')


def test_missing_gym_hil_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'gym_hil' else real(name, *a))
    with pytest.raises(FileNotFoundError, match='pip install --no-deps gym-hil'):
        gym_hil_panda_xml()


def test_robot_is_gym_hils_panda_with_light_visuals(fresh: LampScene) -> None:
    model = fresh.model
    assert all(model.joint(f'joint{i}').id >= 0 for i in range(1, 8))       # a 7-joint Franka arm
    assert model.actuator('fingers_actuator').id >= 0                          # and the 2F-85 gripper
    assert model.nmeshface < 6000                                              # light enough to render fast
