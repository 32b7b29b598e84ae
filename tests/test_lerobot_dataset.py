"""LeRobotDataset v3 export: episode files converted with `lamp-ros to-lerobot` load in lerobot's own
LeRobotDataset (parquet rows, H.264 videos decoded by torchcodec, meta/) with the source's values; the converter
continues a dataset instead of duplicating it; relabels and episodes that do not fit are handled in one line."""
import json

import numpy as np
import pytest
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from lamp_ros import contract as c
from lamp_ros.to_lerobot import main as to_lerobot
from models.episodes import Episode, save_episode
from models.lerobot_dataset import DatasetMismatch, LeRobotWriter


def scene_frames(n: int, size: int = 32, shift: int = 0) -> np.ndarray:
    """Smooth, moving frames (what a camera sees; H.264 keeps them close to the source)."""
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([np.stack([(4 * xx + 6 * t + shift) % 256, 4 * yy, np.full_like(xx, 30 + 10 * t)], -1)
                     for t in range(n)]).astype(np.uint8)


def episode(steps: int, instruction: str, success: bool, seed: int, reward: bool = True) -> Episode:
    rng = np.random.default_rng(seed)
    frames = scene_frames(steps + 1, shift=seed * 40)
    return Episode(frames, instruction, success, image_wrist=frames[:, ::-1].copy(),
                   state=rng.normal(size=(steps + 1, len(c.STATE_KEYS))).astype(np.float32),
                   action=rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
                   reward=np.linspace(0, 1, steps + 1, dtype=np.float32) if reward else None,
                   intervention=np.arange(steps) % 3 == 1,
                   meta=json.dumps({'state_keys': list(c.STATE_KEYS), 'control_rate_hz': 10.0}))


def test_converted_episodes_load_in_lerobots_dataset_class_with_the_source_values(tmp_path, capsys):
    sources = {'rec-a': episode(12, 'push button', True, 0), 'rec-b': episode(7, 'pick up cup', False, 1, reward=False)}
    for name, ep in sources.items():
        save_episode(tmp_path / 'episodes' / f'{name}.npz', ep)
    out = tmp_path / 'dataset'
    assert to_lerobot([str(tmp_path / 'episodes'), '--out', str(out)]) == 0

    ds = LeRobotDataset('lamp_ros/test', root=out)
    assert (len(ds), ds.num_episodes, ds.fps) == (19, 2, 10)
    assert ds.meta.video_keys == ['observation.images.front', 'observation.images.wrist']
    assert ds.meta.features['observation.state']['names'] == list(c.STATE_KEYS)
    assert ds.meta.features['action']['names'] == list(c.ACTION_KEYS)
    start = 0
    for ep_index, (name, src) in enumerate(sources.items()):
        n = len(src.action)
        rows = [ds[start + t] for t in range(n)]
        assert [r['episode_index'].item() for r in rows] == [ep_index] * n
        assert {r['task'] for r in rows} == {src.instruction}
        np.testing.assert_allclose(np.stack([r['action'].numpy() for r in rows]), src.action, rtol=0, atol=0)
        np.testing.assert_allclose(np.stack([r['observation.state'].numpy() for r in rows]), src.state[:n], atol=0)
        flags = [bool(r['complementary_info.is_intervention']) for r in rows]
        assert flags == src.intervention.tolist()
        reward = [r['next.reward'].item() for r in rows]
        expected = src.reward[1:n + 1] if src.reward is not None else [0.0] * (n - 1) + [float(src.success)]
        np.testing.assert_allclose(reward, expected, atol=1e-6)      # the reward of the frame each action led to
        assert [bool(r['next.done']) for r in rows] == [False] * (n - 1) + [True]
        assert [bool(r['next.truncated']) for r in rows] == [False] * (n - 1) + [not src.success]
        for cam, field in (('front', src.image_front), ('wrist', src.image_wrist)):
            decoded = np.stack([r[f'observation.images.{cam}'].numpy().transpose(1, 2, 0) for r in rows]) * 255
            error = np.abs(decoded - field[:n]).mean()
            assert error < 4.0, f'{cam}: mean error {error:.1f} of 255 after H.264'
        meta = ds.meta.episodes[ep_index]
        assert meta['success'] == src.success and json.loads(meta['lamp_meta'])['episode_id'] == name
        start += n
    stats = ds.meta.stats
    np.testing.assert_allclose(stats['action']['mean'], np.concatenate([s.action for s in sources.values()]).mean(0),
                               atol=1e-5)
    assert stats['observation.images.front']['mean'].shape == (3, 1, 1)

    # run again: nothing twice; a new file is appended
    assert to_lerobot([str(tmp_path / 'episodes'), '--out', str(out)]) == 0
    assert '0 episodes added' in capsys.readouterr().out
    save_episode(tmp_path / 'episodes' / 'rec-c.npz', episode(5, 'push button', False, 2))
    assert to_lerobot([str(tmp_path / 'episodes'), '--out', str(out)]) == 0
    ds = LeRobotDataset('lamp_ros/test', root=out)
    assert (len(ds), ds.num_episodes, ds.meta.total_tasks) == (24, 3, 2)
    assert ds[23]['index'].item() == 23 and ds[23]['task'] == 'push button'


def test_relabel_rewrites_an_episode_and_what_does_not_fit_is_named(tmp_path, capsys):
    writer = LeRobotWriter(tmp_path / 'ds', 10)
    first = writer.add(episode(6, 'push button', False, 0))
    assert writer.add(episode(6, 'push button', True, 0), replace=first) == first       # a late success label
    ds = LeRobotDataset('lamp_ros/test', root=tmp_path / 'ds')
    assert len(ds) == 6 and ds.meta.episodes[0]['success'] and not bool(ds[5]['next.truncated'])

    small = Episode(scene_frames(4, size=16), 'push button', True, action=np.zeros((3, 4), np.float32))
    with pytest.raises(DatasetMismatch, match=r'observation.images.front is .*16, 16.* here, .*32, 32.* in the dataset'):
        writer.add(small)
    with pytest.raises(DatasetMismatch, match='only a same-length rewrite'):
        writer.add(episode(4, 'push button', True, 0), replace=first)
    with pytest.raises(ValueError, match='whole number'):
        LeRobotWriter(tmp_path / 'other', 7.5)
    with pytest.raises(DatasetMismatch, match='at 10 fps'):
        LeRobotWriter(tmp_path / 'ds', 30)

    # the converter leaves out what it cannot use, one line each, and converts the rest
    episodes = tmp_path / 'episodes'
    save_episode(episodes / 'no-actions.npz', Episode(scene_frames(3), 'push button', True))
    save_episode(episodes / 'ok.npz', episode(4, 'push button', True, 3))
    (episodes / 'torn.npz').write_bytes(b'PK\x03\x04 not a zip')
    assert to_lerobot([str(episodes), '--out', str(tmp_path / 'converted')]) == 0
    out, err = capsys.readouterr()
    assert '1 episodes added, 2 left out' in out
    assert 'no-actions: left out: an episode without actions' in err and 'torn.npz' in err
    with pytest.raises(SystemExit, match='no such directory'):
        to_lerobot([str(tmp_path / 'missing'), '--out', str(tmp_path / 'x')])
