"""experiments/pretraining_probe.py's probe on made-up features: it reads out a target that the features carry
linearly (across episodes it never fitted) and finds nothing in features that carry none."""
from __future__ import annotations

import numpy as np

from experiments import pretraining_probe as probe


def made_up(carried: bool, episodes: int = 24, steps: int = 20, dim: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    episode = np.repeat(np.arange(episodes), steps)
    target = rng.normal(size=(len(episode), 3))
    noise = rng.normal(size=(len(episode), dim))
    mixing = rng.normal(size=(3, dim))
    return (target @ mixing if carried else 0.0) + 0.3 * noise, target, episode


def test_a_linearly_carried_target_is_read_out_on_unseen_episodes():
    x, y, episode = made_up(carried=True)
    mean, spread = probe.probe(x, y, episode)
    assert mean > 0.9 and spread < 0.05


def test_features_that_carry_nothing_score_no_better_than_the_mean():
    x, y, episode = made_up(carried=False)
    mean, _ = probe.probe(x, y, episode)
    assert mean < 0.05


def test_the_table_and_summary_name_every_encoder_and_task():
    scores = {name: {'push_button': {t: (0.5, 0.1) for t in probe.TARGETS}} for name in ('scratch', 'lamp')}
    rows = probe.table(scores)
    assert len(rows) == 4 and rows[2].startswith('| scratch | push_button | 0.50 +- 0.10')
    assert all('scratch 0.50, lamp 0.50' in line for line in probe.summary(scores))
