"""reward node over real topics, with a tiny random R3M exported to ONNX by the real exporter (no pretrained
weights exist on a test machine): rewards carry the scored images' stamps and equal the model's own score of
(o_0, o_t, instruction), at no more than rate_hz; 'start' makes the next image o_0; a new instruction changes
the reward; missing weights leave the node up, saying so, publishing nothing; bad images are rejected."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from std_msgs.msg import String

from lamp_ros import contract as c
from lamp_ros.graph import ROBOTS, NODES, NodeLaunch, NodeSpec
from lamp_ros.nodes.reward import RatePacer, RunningStandardizer
from lamp_ros.paths import config_file
from lamp_ros.ros.convert import image_msg
from lamp_ros.runner import node_command
from models.r3m.model import R3MNet
from models.r3m.onnx_export import export_onnx
from models.r3m.reward import R3MReward
from models.r3m.runtime import OnnxR3MReward
from models.text_encoder import SentenceEncoder

SIZE = 64
PUSH, DRAWER = 'push the button', 'open the drawer'
# Until lamp_ros.graph lists the reward node, tests start it the way the runner would.
REWARD_SPEC = NodeSpec('reward', 'reward', ROBOTS, 0, 'camera + instruction -> reward')


def start_reward(nodes, params: dict) -> None:
    if any(s.executable == 'reward' for s in NODES):
        nodes.start('reward', params)
        return
    overrides = nodes.tmp / 'reward_params.yaml'
    overrides.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}))
    cmd = node_command(NodeLaunch(REWARD_SPEC, (config_file('common.yaml'), config_file('reward.yaml'))), overrides)
    nodes.logs['reward'] = nodes.tmp / 'reward.log'
    nodes.procs['reward'] = subprocess.Popen(cmd, stdout=open(nodes.logs['reward'], 'w'), stderr=subprocess.STDOUT)


def scene(seed: int) -> np.ndarray:
    """A smooth random picture (not noise: a ResNet should see structure)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR), 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def export_dir(tmp_path_factory, small_vocab) -> Path:
    n_tokens = len(small_vocab.read_text().splitlines())
    text = SentenceEncoder.random(n_layers=1, dim=64, n_heads=1, hidden_dim=128, vocab_size=n_tokens, seed=2)
    reward = R3MReward(R3MNet.random(size=18, hidden_dim=32, lang_enc=text, seed=2), small_vocab,
                       name='r3m-resnet18@tiny-node')
    out = tmp_path_factory.mktemp('reward_node') / 'resnet18_onnx'
    export_onnx(reward, out, verify_sizes=(SIZE,))
    return out


class Camera:
    """Publishes one picture at a fixed rate, each with a fresh stamp; remembers which picture each stamp was."""

    def __init__(self, probe, hz: float = 30.0) -> None:
        self.probe, self.period = probe, 1.0 / hz
        self.image, self.label, self.encoding = None, '', 'rgb8'
        self.sent: dict[tuple[int, int], str] = {}
        self._next = 0.0

    def show(self, image: np.ndarray, label: str, encoding: str = 'rgb8') -> None:
        self.image, self.label, self.encoding = image, label, encoding

    def __call__(self) -> None:
        if self.image is None or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.period
        stamp = self.probe.node.get_clock().now().to_msg()
        msg = image_msg(self.image, stamp, 'camera_front')
        msg.encoding = self.encoding
        self.sent[(stamp.sec, stamp.nanosec)] = self.label
        self.probe.publish(c.CAMERA_IMAGE, msg)


def stamp_key(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def status_of(statuses) -> dict:
    return json.loads(statuses[-1][1].data) if statuses else {}


def test_rewards_stamped_paced_and_reset_by_start(nodes, probe, export_dir):
    model = OnnxR3MReward.load(export_dir)
    a, b, cc = (scene(s) for s in (1, 2, 3))
    e = {k: model.embed_images(img[None]) for k, img in (('A', a), ('B', b), ('C', cc))}
    lang = {t: model.embed_instructions([t]) for t in (PUSH, DRAWER)}

    def expected(first: str, current: str, text: str) -> float:
        return float(model.score(e[first], e[current], lang[text])[0])

    start_reward(nodes, {'checkpoint': str(export_dir), 'rate_hz': 10.0, 'image_size': SIZE})
    rewards = probe.record(c.REWARD)
    statuses = probe.record(c.REWARD_STATUS)
    camera = Camera(probe)
    probe.publish(c.EPISODE_EVENT, String(data='start'))              # creates the publisher (may go unheard)
    probe.publish(c.INSTRUCTION, String(data=PUSH))
    camera.show(a, 'A')                                                # o_0 = A: the first image the node gets
    assert probe.wait_for(lambda: len(rewards) >= 2, 30, camera), nodes.log('reward')
    assert probe.wait_for(lambda: probe._pubs[c.EPISODE_EVENT.name].get_subscription_count() > 0, 10, camera)

    camera.show(b, 'B')
    probe.wait_for(lambda: False, 1.0, camera)
    n0 = len(rewards)
    probe.wait_for(lambda: False, 2.0, camera)
    window = rewards[n0:]
    rate = len(window) / 2.0
    assert 7.0 <= rate <= 10.5, f'{rate} rewards/s at rate_hz 10 with a 30 Hz camera'
    for _, msg in window:
        assert camera.sent[stamp_key(msg)] == 'B'                      # stamped with the image it scored
        assert msg.vector.y == pytest.approx(expected('A', 'B', PUSH), abs=1e-4)
        assert msg.vector.x == msg.vector.y                           # standardize is off
        assert msg.vector.z >= 3 and msg.header.frame_id == 'camera_front'
    stamps = [msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec for _, msg in window]
    assert min(np.diff(stamps)) >= 0.04, 'two images scored closer than half a period'
    assert status_of(statuses)['state'] == 'running'

    camera.show(None, '')                                             # quiet around the event: no image of the
    probe.wait_for(lambda: False, 0.2, camera)                         # old episode may arrive after it
    n1 = len(rewards)
    probe.publish(c.EPISODE_EVENT, String(data='start'))              # the next image is o_0 again
    probe.wait_for(lambda: False, 0.2, camera)
    camera.show(cc, 'C')
    probe.wait_for(lambda: False, 0.6, camera)
    camera.show(b, 'B')
    assert probe.wait_for(lambda: sum(camera.sent[stamp_key(m)] == 'B' for _, m in rewards[n1:]) >= 3, 5, camera)
    restart = [msg for _, msg in rewards[n1:]]
    assert camera.sent[stamp_key(restart[0])] == 'C' and restart[0].vector.z == 0     # o_0 scored against itself
    assert restart[0].vector.y == pytest.approx(expected('C', 'C', PUSH), abs=1e-4)
    after = [msg for msg in restart if camera.sent[stamp_key(msg)] == 'B']
    assert after[-1].vector.y == pytest.approx(expected('C', 'B', PUSH), abs=1e-4)
    assert abs(expected('C', 'B', PUSH) - expected('A', 'B', PUSH)) > 1e-4
    assert after[0].vector.z < window[-1][1].vector.z                 # the frame index restarted

    probe.publish(c.INSTRUCTION, String(data=DRAWER))
    want = expected('C', 'B', DRAWER)
    assert abs(want - expected('C', 'B', PUSH)) > 1e-4
    assert probe.wait_for(lambda: rewards[-1][1].vector.y == pytest.approx(want, abs=1e-4), 5, camera), \
        (rewards[-1][1].vector.y, want)

    # 'stop': the episode's last frames (arriving within stop_grace_s, 0.5 s) are still scored, later ones not
    probe.publish(c.EPISODE_EVENT, String(data='stop'))
    probe.wait_for(lambda: False, 0.05, camera)
    camera.show(a, 'last')
    assert probe.wait_for(lambda: any(camera.sent[stamp_key(m)] == 'last' for _, m in rewards), 5, camera), \
        'the frame after the stop (the last action\'s result) must be scored'
    probe.wait_for(lambda: False, 1.0, camera)
    camera.show(a, 'after')
    probe.wait_for(lambda: False, 1.0, camera)
    assert not any(camera.sent[stamp_key(m)] == 'after' for _, m in rewards)
    assert status_of(statuses)['state'] == 'waiting'
    probe.publish(c.EPISODE_EVENT, String(data='start'))

    n2 = len(rewards)
    camera.show(b, 'yuv', encoding='yuv422')
    assert probe.wait_for(lambda: "camera image rejected: encoding is 'yuv422'" in nodes.log('reward'), 5, camera)
    probe.wait_for(lambda: False, 0.5, camera)
    assert all(camera.sent[stamp_key(msg)] != 'yuv' for _, msg in rewards[n2:])
    assert nodes.alive('reward')


def test_missing_weights_said_once_node_stays_up(nodes, probe, tmp_path):
    start_reward(nodes, {'checkpoint': str(tmp_path / 'resnet50_onnx'), 'image_size': SIZE})
    rewards = probe.record(c.REWARD)
    statuses = probe.record(c.REWARD_STATUS)
    camera = Camera(probe)
    camera.show(scene(1), 'A')
    probe.publish(c.INSTRUCTION, String(data=PUSH))
    assert probe.wait_for(lambda: status_of(statuses).get('state') == 'no_weights', 20, camera), nodes.log('reward')
    status = status_of(statuses)
    assert 'R3M ONNX reward model missing' in status['reason'] and 'lamp-models export-onnx' in status['reason']
    probe.wait_for(lambda: False, 1.5, camera)
    assert not rewards and nodes.alive('reward')
    assert nodes.log('reward').count('R3M ONNX reward model missing') == 1


def test_running_standardizer_is_per_instruction():
    standardize = RunningStandardizer()
    assert standardize('a', 5.0) == 0.0                               # one value: no scale yet
    values = [standardize('a', v) for v in (1.0, 3.0)]
    data = np.array([5.0, 1.0, 3.0])
    assert values[-1] == pytest.approx((3.0 - data.mean()) / data.std(ddof=1))
    assert standardize('b', 100.0) == 0.0                             # another instruction, its own statistics
    assert standardize('b', 50.0) == pytest.approx((50.0 - 75.0) / np.std([100.0, 50.0], ddof=1))


def test_rate_pacer_never_exceeds_the_rate():
    pacer = RatePacer(10.0)
    for period in (0.033, 0.04, 0.07):                                 # cameras faster than the rate, jittery or not
        pacer = RatePacer(10.0)
        scored = []
        for t in np.arange(0.0, 10.0, period):
            if pacer.due(t):
                pacer.acted(t)
                scored.append(t)
        assert 9.5 <= len(scored) / 10.0 <= 10.0 + 1e-9, (period, len(scored))
        assert min(np.diff(scored)) >= 0.05
    pacer.acted(20.0)                                                   # after a gap: no burst to catch up
    assert not pacer.due(20.04) and pacer.due(20.1)
