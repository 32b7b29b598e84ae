"""TransitionAssembler: rewards matched to the next frame, chunking, timeouts, the final chunk."""
import math

import numpy as np
import pytest

from lamp_ros.core.transitions import TransitionAssembler


def img(i):
    return np.full((4, 4, 3), i, np.uint8)


def run_steps(a, n, t0=0.0, rewards=True):
    for i in range(n):
        a.on_step(t0 + i * 0.1, img(i), stamp(i), np.full(8, i, np.float32), np.full(4, i / 10, np.float32), i == 1)
        if rewards:
            a.on_reward(stamp(i), float(i))


def stamp(i):
    return 100.0 + i * 0.1


def test_reward_of_a_step_is_the_next_frames_and_chunks_wait_for_it():
    a = TransitionAssembler('r', chunk_steps=3)
    a.start('push button')
    run_steps(a, 4)
    chunks = a.ready_chunks(now=0.4)
    assert len(chunks) == 1
    meta, arrays = chunks[0]
    assert meta['first_step'] == 0 and meta['instruction'] == 'push button' and meta['last'] is None
    assert arrays['reward'].tolist() == [1.0, 2.0, 3.0]             # r_t = reward(o_{t+1})
    assert arrays['intervention'].tolist() == [False, True, False]
    assert arrays['image_front'].shape == (3, 4, 4, 3) and arrays['state'].shape == (3, 8)
    assert a.ready_chunks(now=0.4) == []


def test_stop_sends_the_rest_with_final_frame_success_and_label():
    a = TransitionAssembler('r', chunk_steps=3)
    a.start('x')
    run_steps(a, 5)
    sent = a.ready_chunks(now=0.5)
    a.on_reward(stamp(5), 5.0)
    rest = a.stop(now=0.6, final_image=img(5), final_stamp=stamp(5), final_state=np.zeros(8), success=True,
                  label='success')
    assert sum(len(c[1]['action']) for c in sent + rest) == 5
    meta, arrays = rest[-1]
    assert meta['last'] == {'success': True, 'label': 'success', 'steps': 5}
    assert arrays['reward'].tolist() == [4.0, 5.0]
    assert arrays['final_image'].shape == (1, 4, 4, 3) and int(arrays['final_image'][0, 0, 0, 0]) == 5
    assert a.episode is None and a.ready_chunks(1.0) == []


def test_missing_rewards_time_out_as_nan_and_are_counted():
    a = TransitionAssembler('r', chunk_steps=2, reward_timeout_s=1.0)
    a.start('x')
    run_steps(a, 3, rewards=False)
    assert a.ready_chunks(now=0.5) == []                             # still waiting
    (meta, arrays), = a.ready_chunks(now=5.0)
    assert np.isnan(arrays['reward']).all() and meta['rewards_missing'] == 2 and a.rewards_missing == 2


def test_last_chunk_can_be_empty_and_steps_outside_episodes_are_ignored():
    a = TransitionAssembler('r', chunk_steps=2)
    run_steps(a, 2)                                                   # no episode yet
    assert a.steps_recorded == 0
    a.start('x')
    run_steps(a, 2)
    a.on_reward(stamp(2), 2.0)
    a.on_step(0.2, img(2), stamp(2), np.zeros(8), np.zeros(4), False)
    assert len(a.ready_chunks(now=0.3)) == 1
    rest = a.stop(now=0.4, final_image=None, final_stamp=math.nan, final_state=None, success=False, label='')
    assert len(rest) == 1 and len(rest[0][1]['action']) == 1
    with pytest.raises(ValueError):
        TransitionAssembler('r', chunk_steps=0)


def test_a_further_camera_travels_beside_the_front_image_to_the_final_frame():
    a = TransitionAssembler('r', chunk_steps=2)
    a.start('x')
    for i in range(3):
        a.on_step(i * 0.1, img(i), stamp(i), np.zeros(8), np.zeros(4), False, {'wrist': img(50 + i)[:2]})
        a.on_reward(stamp(i), 0.0)
    a.on_reward(stamp(3), 0.0)
    chunks = a.ready_chunks(now=0.3) + a.stop(now=0.4, final_image=img(3), final_stamp=stamp(3),
                                              final_state=np.zeros(8), success=True, label='',
                                              final_more_images={'wrist': img(53)[:2]})
    wrist = np.concatenate([arrays['image_wrist'] for _, arrays in chunks])
    assert wrist.shape == (3, 2, 4, 3) and wrist[:, 0, 0, 0].tolist() == [50, 51, 52]
    assert int(chunks[-1][1]['final_image_wrist'][0, 0, 0, 0]) == 53 and chunks[-1][1]['final_image'].shape == \
        (1, 4, 4, 3)
