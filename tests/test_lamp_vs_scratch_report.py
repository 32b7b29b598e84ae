"""experiments/lamp_vs_scratch.py's arithmetic on made-up evaluation curves: steps to a rate with seeds that never
got there counted as the budget, runs stopped at 80% held at their last rate, the plain conclusion, and what a
pretraining run's reward was made of."""
from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import lamp_vs_scratch as lvs


def write_curve(run, rates, every=2500):
    run.mkdir(parents=True, exist_ok=True)
    (run / 'evals.json').write_text(json.dumps([{'step': k * every, 'success_rate': r} for k, r in enumerate(rates)]))


def test_steps_to_a_rate_count_a_seed_that_never_got_there_as_the_budget():
    points = [(0, 0.0), (2500, 0.3), (5000, 0.6), (7500, 0.85)]
    assert lvs.steps_to(points, 0.5, 20000) == (5000, True)
    assert lvs.steps_to(points, 0.8, 20000) == (7500, True)
    assert lvs.steps_to(points[:3], 0.8, 20000) == (20000, False)


def test_a_run_stopped_at_80_percent_keeps_its_rate_and_an_unfinished_one_does_not():
    steps = [0, 5000, 10000]
    assert lvs.held_at_stop([(0, 0.0), (5000, 0.9)], steps) == {0: 0.0, 5000: 0.9, 10000: 0.9}
    assert lvs.held_at_stop([(0, 0.0), (5000, 0.4)], steps) == {0: 0.0, 5000: 0.4}
    assert lvs.mean_curve([[(0, 0.0), (5000, 0.9)], [(0, 0.0), (5000, 0.4), (10000, 0.6)]]) == \
        ([0, 5000, 10000], [0.0, 0.65, 0.75])
    steps, means = lvs.mean_curve([[(0, 0.0), (5000, 0.9)], [(0, 0.2), (2500, 0.8)]], until=7500)
    assert steps == [0, 5000, 7500] and means == pytest.approx([0.1, 0.85, 0.85]), 'all stopped early: held to 7.5k'


def test_the_table_and_conclusion_from_finished_and_unfinished_seeds(tmp_path):
    args = lvs.parse_args(['--runs', str(tmp_path), '--tasks', 'push_button', '--seeds', '0', '1', '2',
                           '--steps', '10000'])
    for seed in range(3):                  # lamp: 50% at 2.5k and 80% at 5k on every seed
        write_curve(tmp_path / f'lamp_push_button_s{seed}', [0.0, 0.6, 0.9])
        write_curve(tmp_path / f'novelty_push_button_s{seed}', [0.0, 0.1, 0.2, 0.5, 0.6])   # 50% at 7.5k, no 80%
    write_curve(tmp_path / 'scratch_push_button_s0', [0.0, 0.0, 0.1, 0.2, 0.3])          # never: the budget
    write_curve(tmp_path / 'scratch_push_button_s1', [0.0, 0.0, 0.1])                    # still running
    write_curve(tmp_path / 'scratch_push_button_s2', [0.0])                              # just started
    summary = lvs.summarize(args)
    lamp, novelty, scratch = (summary['table'][f'{arm}/push_button'] for arm in ('lamp', 'novelty', 'scratch'))
    assert lamp['to_50%']['median_ci'][0] == 2500 and lamp['to_80%']['reached'] == 3
    assert novelty['to_50%']['median_ci'][0] == 7500 and novelty['to_80%']['per_seed'] == [(10000, False)] * 3
    assert scratch['seeds_finished'] == [0] and scratch['to_50%']['per_seed'] == [(10000, False)]
    assert 'lamp reaches 50% first (median 2500 env steps); its interval is clear' in lvs.conclusion(summary, args)
    assert 'Success at 10k env steps: not every seed is there yet.' in lvs.conclusion(summary, args)
    for seed in (1, 2):                                                                  # scratch finishes low
        write_curve(tmp_path / f'scratch_push_button_s{seed}', [0.0, 0.0, 0.1, 0.2, 0.3])
    text = lvs.conclusion(lvs.summarize(args), args)
    assert 'Mean success at 10k env steps: scratch 0.30 (0.30-0.30), novelty 0.60 (0.60-0.60), lamp 0.90 ' \
           '(0.90-0.90); lamp is highest, its interval is clear of the others\'.' in text, text
    table = '\n'.join(lvs.success_by_step(summary, args))
    assert '| lamp | push_button | 0.00 (0.00-0.00) | 0.90 (0.90-0.90) | 0.90 (0.90-0.90) |' in table
    assert '| scratch | push_button | 0.00 (0.00-0.00) |  |  |' in table, 'seed 2 has not reached 5k yet'
    assert np.isfinite(lamp['to_50%']['median_ci']).all()


def test_runs_train_on_the_device_asked_for_and_cpu_commands_stay_as_they_were(tmp_path):
    cpu = lvs.jobs_for(lvs.parse_args(['--runs', str(tmp_path)]), tmp_path / 'r3m')
    gpu = lvs.jobs_for(lvs.parse_args(['--runs', str(tmp_path), '--device', 'cuda']), tmp_path / 'r3m')
    assert len(cpu) == len(gpu) == 2 + 45
    assert all('--device' not in job.args for job in cpu)
    assert all(job.args[job.args.index('--device') + 1] == 'cuda' for job in gpu)


def test_the_pretraining_reward_terms_as_weighted_into_the_reward(tmp_path):
    from torch.utils.tensorboard import SummaryWriter
    run = tmp_path / 'pretrain_lamp'
    (run / 'replay').mkdir(parents=True)
    for index, vlm in enumerate(([-1.0, -3.0], [-5.0, -7.0])):
        np.savez(run / 'replay' / f'{index:06d}.npz', vlm_reward=np.array(vlm, np.float32))
    with SummaryWriter(str(run / 'tb')) as writer:
        for step, value in enumerate((1.0, 1.0, 3.0, 3.0)):
            writer.add_scalar('train/intrinsic_reward', value, step)
    terms = lvs.pretraining_reward(run, alpha=0.1)
    assert terms['vlm_mean'] == pytest.approx(-0.4) and terms['vlm_std_within_episode'] == pytest.approx(0.1)
    assert terms['vlm_std'] == pytest.approx(0.1 * 5 ** 0.5) and terms['novelty_mean'] == pytest.approx(0.9 * 3.0)
    assert lvs.pretraining_reward(tmp_path / 'pretrain_novelty', alpha=0.0) is None         # not pretrained yet
    line, = lvs.reward_lines({'pretrain_reward': {'lamp': terms, 'novelty': None}})
    assert 'alpha r_VLM mean -0.400 per step, spread 0.100 within an episode' in line and 'novelty mean 2.7000' in line


def test_the_leader_is_compared_with_each_other_arm_on_its_own():
    steps = {'scratch': (5000, 5000, 12500), 'novelty': (7500, 5000, 20000), 'lamp': (20000, 20000, 20000)}
    assert lvs._clear_of_others('scratch', steps, lower_is_better=True) == \
        'its interval is clear of lamp, but overlaps novelty (no evidence of a difference there)'
    success = {'scratch': (0.9, 0.85, 0.95), 'novelty': (0.6, 0.44, 0.79), 'lamp': (0.27, 0.11, 0.43)}
    assert lvs._clear_of_others('scratch', success, lower_is_better=False) == 'its interval is clear of the others\''
    assert lvs._clear_of_others('lamp', {'lamp': (0.1, 0.0, 0.3), 'scratch': (0.05, 0.0, 0.2)}, False) == \
        'the intervals overlap, so this is no evidence of a difference'
