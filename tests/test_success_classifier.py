"""The binary success classifier: trained by `lamp-models train-classifier` from episode files, exported to
ONNX and checked against torch, run by the robot's onnxruntime loader, refused with the mismatch named when its
files disagree, and scored by the reward node (model: classifier) as the reward of each frame."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from std_msgs.msg import String

from lamp_ros import contract as c
from models.cli import main as models_main
from models.episodes import Episode, save_episode
from models.reward_model import WeightsMissing
from models.success_classifier import MANIFEST_FILE, ONNX_FILE, ClassifierError, SuccessClassifier
from tests.test_reward_node import Camera, start_reward, status_of

SIZE = 32


def frame(done: bool, rng: np.random.Generator) -> np.ndarray:
    """A noisy table; when the task is done, a bright block sits in the middle (what success looks like)."""
    image = rng.integers(40, 90, (SIZE, SIZE, 3), dtype=np.uint8)
    if done:
        image[10:22, 10:22] = 230
    return image


def episodes(directory, count: int = 12) -> None:
    rng = np.random.default_rng(0)
    directory.mkdir()
    for k in range(count):
        success = k % 3 != 0
        frames = np.stack([frame(success and t >= 9, rng) for t in range(12)])
        save_episode(directory / f'ep{k:02d}.npz', Episode(image_front=frames, instruction='push button',
                                                           success=success, task='push_button'))


@pytest.fixture(scope='module')
def classifier_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('classifier')
    episodes(root / 'episodes')
    out = root / 'classifier'
    assert models_main(['train-classifier', '--episodes', str(root / 'episodes'), '--out', str(out),
                        '--image-size', str(SIZE), '--steps', '150', '--threads', '1', '--quiet']) == 0
    return out


def test_trained_classifier_separates_success_frames_in_onnxruntime(classifier_dir):
    report = json.loads((classifier_dir / MANIFEST_FILE).read_text())['report']
    assert report['held_out']['accuracy'] > 0.9 and report['held_out']['recall'] > 0.9, report
    classifier = SuccessClassifier.load(classifier_dir)
    rng = np.random.default_rng(5)
    done, not_done = frame(True, rng), frame(False, rng)
    p_done, p_not = classifier.probabilities(np.stack([done, not_done]))
    assert p_done > 0.8 and p_not < 0.2
    big = np.stack([np.kron(done, np.ones((4, 4, 1), np.uint8))])            # a 128x128 camera frame: resized
    assert classifier.probabilities(big)[0] > 0.8
    # the reward model interface: the frame's probability, whatever the first frame and instruction
    reward = classifier.score(classifier.embed_images(not_done[None]), classifier.embed_images(done[None]),
                              classifier.embed_instructions(['push button']))
    assert reward[0] == pytest.approx(p_done, abs=1e-6)
    with pytest.raises(ValueError, match='square'):
        classifier.probabilities(np.zeros((1, SIZE, SIZE + 8, 3), np.uint8))


def test_bad_classifier_directories_are_refused_with_the_mismatch_named(classifier_dir, tmp_path):
    with pytest.raises(WeightsMissing, match='train-classifier'):
        SuccessClassifier.load(tmp_path / 'nothing')
    wrong = tmp_path / 'wrong_size'
    wrong.mkdir()
    (wrong / ONNX_FILE).write_bytes((classifier_dir / ONNX_FILE).read_bytes())
    manifest = json.loads((classifier_dir / MANIFEST_FILE).read_text())
    (wrong / MANIFEST_FILE).write_text(json.dumps({**manifest, 'image_size': 64}))
    with pytest.raises(ClassifierError, match=r'\[N, 64, 64, 3\].*image_size 64'):
        SuccessClassifier.load(wrong)
    (wrong / MANIFEST_FILE).write_text(json.dumps({**manifest, 'format': 'something-else'}))
    with pytest.raises(ClassifierError, match='format'):
        SuccessClassifier.load(wrong)
    (wrong / MANIFEST_FILE).write_text(json.dumps(manifest))
    (wrong / ONNX_FILE).write_bytes(b'not a model')
    with pytest.raises(ClassifierError, match='not a loadable ONNX model'):
        SuccessClassifier.load(wrong)
    model = onnx.load(str(classifier_dir / ONNX_FILE))
    model.graph.output[0].name = 'logit'
    model.graph.node[-1].output[0] = 'logit'
    onnx.save(model, str(wrong / ONNX_FILE))
    with pytest.raises(ClassifierError, match="output 'success_probability'"):
        SuccessClassifier.load(wrong)


def test_training_needs_both_kinds_of_frames(tmp_path, capsys):
    (tmp_path / 'eps').mkdir()
    rng = np.random.default_rng(0)
    save_episode(tmp_path / 'eps' / 'a.npz', Episode(image_front=np.stack([frame(False, rng)] * 8),
                                                     instruction='push button', success=False))
    assert models_main(['train-classifier', '--episodes', str(tmp_path / 'eps'), '--out', str(tmp_path / 'o'),
                        '--quiet']) == 1
    assert 'all 8 frames are negatives' in capsys.readouterr().err


def test_reward_node_scores_frames_with_the_classifier(nodes, probe, classifier_dir):
    start_reward(nodes, {'model': 'classifier', 'checkpoint': str(classifier_dir), 'image_size': SIZE})
    rewards, statuses = probe.record(c.REWARD), probe.record(c.REWARD_STATUS)
    camera = Camera(probe)
    rng = np.random.default_rng(9)
    camera.show(frame(False, rng), 'not done')
    probe.publish(c.INSTRUCTION, String(data='push button'))
    probe.publish(c.EPISODE_EVENT, String(data='start'))
    assert probe.wait_for(lambda: len(rewards) >= 3, 30, camera), nodes.log('reward')
    assert status_of(statuses)['state'] == 'running'
    assert max(m.vector.x for _, m in rewards) < 0.2
    seen = len(rewards)
    camera.show(frame(True, rng), 'done')
    assert probe.wait_for(lambda: any(m.vector.x > 0.8 for _, m in rewards[seen:]), 20, camera), nodes.log('reward')
