"""ROS-free pieces: gripper logic, pacing, image checks, state vectors."""
import numpy as np
import pytest

from lamp_ros.core.embedding_cache import EmbeddingCache
from lamp_ros.core.gripper import CLOSED, OPEN, GripperConfig, GripperLogic
from lamp_ros.core.images import ImageRejected, decode_image, fit_to_size
from lamp_ros.core.instruction import InstructionRejected, accepted_instruction, checked_instruction
from lamp_ros.core.observation import RobotState, StateHistory, state_vector
from lamp_ros.core.pacing import ImagePacer


class TestGripper:
    def test_no_command_until_first_action(self):
        g = GripperLogic(GripperConfig())
        assert g.command is None and g.poll(0.0) is None
        assert g.update(0.0, 0.9) == OPEN

    def test_hysteresis_suppresses_chatter(self):
        g = GripperLogic(GripperConfig(open_threshold=0.5, hysteresis=0.1, min_switch_interval_s=0.0))
        assert g.update(0.0, 0.7) == OPEN
        changes = [g.update(1.0 + i, a) for i, a in enumerate([0.45, 0.55, 0.41, 0.59])]
        assert changes == [None] * 4 and g.command == OPEN
        assert g.update(10.0, 0.39) == CLOSED
        assert g.update(11.0, 0.55) is None and g.update(12.0, 0.61) == OPEN

    def test_rate_limit_defers_switch(self):
        g = GripperLogic(GripperConfig(min_switch_interval_s=0.5))
        assert g.update(0.0, 1.0) == OPEN
        assert g.update(0.1, -1.0) is None             # too soon
        assert g.command == OPEN
        assert g.poll(0.3) is None
        assert g.poll(0.6) == CLOSED                   # applied once allowed

    def test_invalid_config(self):
        with pytest.raises(ValueError):
            GripperConfig(hysteresis=-0.1)


def test_pacer_decimates_fast_camera():
    p = ImagePacer(10.0)
    acted = []
    for i in range(30):                                # 30 Hz camera for one second
        t = i / 30
        if p.due(t):
            p.acted(t)
            acted.append(t)
    assert len(acted) == 10
    with pytest.raises(ValueError):
        ImagePacer(0.0)


def test_pacer_keeps_the_average_rate_under_jitter():
    rng = np.random.default_rng(0)
    p = ImagePacer(10.0)
    arrivals = np.arange(300) / 30 + rng.uniform(0, 0.02, 300)      # 30 Hz camera, up to 20 ms late, 10 s
    acted = []
    for t in arrivals:
        if p.due(t):
            p.acted(t)
            acted.append(t)
    assert 99 <= len(acted) <= 101                                  # 10 Hz on average, not 13
    assert np.min(np.diff(acted)) >= 0.075 - 1e-9


class TestImages:
    def test_decode_rgb8_with_row_padding(self):
        h, w, step = 2, 3, 12
        raw = np.arange(h * step, dtype=np.uint8)
        img = decode_image('rgb8', h, w, step, raw.tobytes())
        assert img.shape == (2, 3, 3)
        assert img[1, 0].tolist() == [12, 13, 14]

    def test_bgr8_and_mono8_are_converted_to_rgb(self):
        rgb = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)
        bgr = decode_image('bgr8', 1, 2, 6, rgb[..., ::-1].tobytes())
        assert np.array_equal(bgr, rgb)
        grey = decode_image('mono8', 1, 2, 4, bytes([7, 9, 0, 0]))            # a padded row
        assert grey.shape == (1, 2, 3) and grey[0, 1].tolist() == [9, 9, 9]

    @pytest.mark.parametrize('encoding,h,w,step,n,match', [
        ('yuv422', 2, 2, 4, 8, "encoding is 'yuv422', expected one of rgb8, bgr8, mono8"),
        ('mono8', 2, 2, 1, 2, r'step 1 is smaller than width\*1 = 2'),
        ('rgb8', 0, 2, 6, 0, 'empty image'),
        ('rgb8', 2, 2, 4, 8, 'step 4 is smaller'),
        ('rgb8', 2, 2, 6, 10, 'data has 10 bytes'),
    ])
    def test_rejections_say_why(self, encoding, h, w, step, n, match):
        with pytest.raises(ImageRejected, match=match):
            decode_image(encoding, h, w, step, bytes(n))

    def test_fit_to_size(self):
        img = np.zeros((128, 128, 3), np.uint8)
        assert fit_to_size(img, 64, 64, resize=True).shape == (64, 64, 3)
        assert fit_to_size(img, 128, 128, resize=False) is img
        with pytest.raises(ImageRejected, match='resizing disabled'):
            fit_to_size(img, 64, 64, resize=False)
        with pytest.raises(ImageRejected, match='aspect ratio'):
            fit_to_size(np.zeros((480, 640, 3), np.uint8), 64, 64, resize=True)
        with pytest.raises(ImageRejected, match='never upscaled'):
            fit_to_size(np.zeros((1, 1, 3), np.uint8), 64, 64, resize=True)


def test_state_vector_follows_bundle_keys():
    s = RobotState(pose_t=1.0, position=np.array([0.1, 0.2, 0.3]), quaternion=np.array([1.0, 0, 0, 0]),
                   gripper_t=1.0, gripper_opening=0.8)
    v = state_vector(('gripper_opening', 'ee_z', 'ee_x', 'ee_qw'), s)
    assert v.dtype == np.float32 and v.tolist() == pytest.approx([0.8, 0.3, 0.1, 1.0])


def test_robot_state_reports_missing_and_stale():
    s = RobotState()
    assert s.missing(('ee_x', 'gripper_opening'), 1.0, 0.15) == ['robot/ee_pose', 'robot/gripper_state']
    s.pose_t, s.gripper_t = 0.5, 0.95
    assert s.missing(('ee_x', 'gripper_opening'), 1.0, 0.15) == ['robot/ee_pose (stale)']
    assert s.missing(('gripper_opening',), 1.0, 0.15) == []


def test_state_history_pairs_an_image_with_the_state_of_its_stamp():
    h = StateHistory(keep=4)
    q = np.array([0.0, 1.0, 0.0, 0.0])
    for k in range(6):                                    # ticks 0..5 at 10 Hz; only the last 4 are kept
        h.add_pose(0.1 * k, 10.0 + 0.1 * k, np.array([0.01 * k, 0.0, 0.3]), q)
        h.add_gripper(0.1 * k, 10.0 + 0.1 * k, 1.0 - 0.1 * k)
    assert h.at(0.31).position[0] == pytest.approx(0.03) and h.at(0.31).gripper_opening == pytest.approx(0.7)
    assert h.latest().position[0] == pytest.approx(0.05) and h.latest().pose_t == pytest.approx(10.5)
    assert h.at(0.0).position[0] == pytest.approx(0.02), 'the oldest kept reading'
    keys = ('ee_x', 'gripper_opening')
    assert h.caught_up(keys, 0.5, 99.0), 'readings stamped at the image stamp'
    assert not h.caught_up(keys, 0.6, 10.55), 'the tick of the image has not come yet'
    assert h.caught_up(keys, 0.6, 10.45), 'a reading that arrived after the image is as new as it gets'
    assert h.caught_up(('ee_x',), 0.6, 10.45) and not StateHistory().caught_up(keys, 0.0, 0.0)


def test_state_history_with_unstamped_readings_uses_the_newest():
    h = StateHistory()
    for k in range(3):
        h.add_pose(0.0, float(k), np.array([float(k), 0.0, 0.0]), np.zeros(4))
    assert h.at(1234.5).position[0] == 2.0


@pytest.mark.parametrize('text, problem', [('   ', 'empty'), ('x' * 513, '513 characters'),
                                           ('a\n' * 400, 'starting "a\\\\na')])
def test_instructions_are_bounded(text, problem):
    with pytest.raises(InstructionRejected, match=problem):
        checked_instruction(text)
    assert checked_instruction('  push the button ') == 'push the button'
    assert checked_instruction('y' * 512) == 'y' * 512


def test_a_flood_of_bad_instructions_on_the_topic_logs_one_line_per_kind(caplog):
    import logging
    from lamp_ros.core.fault_log import FaultLog
    faults = FaultLog(logging.getLogger('instruction-test'))
    with caplog.at_level(logging.WARNING, logger='instruction-test'):
        assert all(accepted_instruction(text, faults) is None for text in ['', ' '] * 50 + ['x' * 600] * 50)
    assert accepted_instruction(' push the button ', faults) == 'push the button'
    assert faults.counts == {'empty': 100, 'too_long': 50}
    assert len(caplog.records) == 2 and all('instruction ignored' in r.getMessage() for r in caplog.records)


def test_instruction_embeddings_are_computed_once_and_the_least_recently_used_goes_first():
    calls = []
    cache = EmbeddingCache(lambda text: calls.append(text) or np.full(2, len(calls), np.float32), size=2)
    assert cache('a')[0] == 1 and cache('b')[0] == 2 and cache('a')[0] == 1 and calls == ['a', 'b']
    cache('c')                                       # 'b' was used least recently: forgotten, 'a' kept
    assert len(cache) == 2 and cache('a')[0] == 1 and calls == ['a', 'b', 'c']
    cache('b')
    assert calls == ['a', 'b', 'c', 'b']
    assert cache.put('d', np.zeros(2, np.float32)) is not None and cache('d')[0] == 0 and calls[-1] == 'b'
    with pytest.raises(ValueError, match='at least 1'):
        EmbeddingCache(lambda text: np.zeros(2), size=0)
