"""The training loop shared by pretraining and finetuning: collect episodes, store them, update the agent,
evaluate, checkpoint; always resumed from the run's newest complete checkpoint (a new run has one at step 0).

Pretraining and finetuning differ only in what `Session` holds: the reward the agent learns from
(reward_key: 'vlm_reward' or the task's 'reward'), the VLM labeler, the fixed instruction, the linear probe.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from lamp_ros.fileio import atomic_write_text
from training.agent import DrQAgent
from training.checkpoint import (latest_checkpoint, load_checkpoint, numpy_rng_from_state, numpy_rng_state,
                                  save_checkpoint)
from training.config import TrainConfig, replace, to_dict
from sim.experts import make_expert
from training.evaluate import evaluate, make_env
from training.replay import EpisodeReplay
from training.run import EVAL_SEED_BASE, RunError, RunInfo, RunPaths, update_config
from training.runlog import TensorBoard, plot_learning_curve, write_evals, write_video
from training.text import InstructionEmbedder
from training.vlm import RewardStandardizer, VlmRewardLabeler


@dataclass
class Session:
    paths: RunPaths
    config: TrainConfig
    info: RunInfo
    agent: DrQAgent
    embedder: InstructionEmbedder
    reward_key: str = 'reward'                       # which stored reward the agent learns from
    labeler: VlmRewardLabeler | None = None          # pretraining: r_VLM of each stored episode
    linear_probe_steps: int | None = None            # finetuning with critic_linear_probe: 0 = whole run
    steps: int | None = None                         # extend (or shorten) the run to this many env steps


# Settings added after runs existed: at these values they stay out of the hash, so older runs still resume.
HASH_OMITS_AT_DEFAULT = {'prefill_expert_episodes': 0}


def run_hash(config: TrainConfig) -> str:
    """The config hash a checkpoint must match; `steps` is left out so that a run can be extended."""
    data = to_dict(replace(config, steps=1))
    for key, default in HASH_OMITS_AT_DEFAULT.items():
        if data[key] == default:
            del data[key]
    return hashlib.sha256(yaml.safe_dump(data, sort_keys=False).encode()).hexdigest()[:16]


def initial_trainer_state(config: TrainConfig) -> dict[str, Any]:
    return {'episodes': 0, 'rng': numpy_rng_state(np.random.default_rng(config.seed)), 'evals': [],
            'reward_stats': {}, 'instructions': {}, 'next_eval': 0, 'next_checkpoint': config.checkpoint_every}


def train(session: Session) -> dict[str, Any]:
    """Run (or continue) the session until config.steps env steps; return the last evaluation."""
    paths, agent = session.paths, session.agent
    lock = _lock(paths)
    if session.steps is not None and session.steps != session.config.steps:
        session.config = replace(session.config, steps=session.steps)
        update_config(paths, session.config)
    cfg = session.config
    torch.set_num_threads(cfg.threads)
    checkpoint = latest_checkpoint(paths.root)
    if checkpoint is None:
        raise RuntimeError(f'{paths.root}: no checkpoint (every run is created with one at step 0)')
    payload = load_checkpoint(checkpoint, agent, run_hash(cfg))
    step, state = int(payload['step']), payload['trainer']
    rng = numpy_rng_from_state(state['rng'])
    standardizer = RewardStandardizer()
    standardizer.load_state(state['reward_stats'])
    instructions = Counter(state['instructions'])
    evals: list[dict[str, Any]] = state['evals']
    replay = EpisodeReplay(paths.replay, cfg.replay.capacity, cfg.replay.memory_episodes,
                           _stored_cameras(cfg), cfg.agent.n_step)
    dropped = replay.truncate_after(step)
    env, eval_env = make_env(session.info.task, cfg.env), make_env(session.info.task, cfg.env)
    expert = make_expert(session.info.task) if cfg.prefill_expert_episodes else None
    board = TensorBoard(paths.tensorboard)
    _print_start(session, step, checkpoint, dropped, replay)

    def save() -> None:
        trainer = {'episodes': episodes, 'rng': numpy_rng_state(rng), 'evals': evals,
                   'reward_stats': standardizer.state(), 'instructions': dict(instructions),
                   'next_eval': next_eval, 'next_checkpoint': next_checkpoint}
        save_checkpoint(paths.root, step, agent, run_hash(cfg), trainer, keep=cfg.keep_checkpoints)

    def run_eval() -> None:
        result = evaluate(eval_env, agent, session.embedder, [EVAL_SEED_BASE + k for k in range(cfg.eval_episodes)],
                          session.info.instruction, record_first=cfg.video)
        row = {'step': step, **result.summary()}
        evals.append(row)
        board.scalars(step, result.summary(), 'eval')
        board.flush()
        write_evals(paths.evals, evals)
        plot_learning_curve(paths.curve, evals, f'{session.info.mode} {session.info.task} ({paths.root.name})')
        if cfg.video:
            write_video(paths.videos / f'eval_{step:09d}.mp4', result.frames, fps=10.0)
        bar.set_postfix_str(f'eval success {result.success_rate:.2f} return {result.mean_return:.1f}')

    episodes, next_eval = int(state['episodes']), int(state['next_eval'])
    next_checkpoint = int(state['next_checkpoint'])
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    last_log = step
    bar = tqdm(total=cfg.steps, initial=step, unit='step', desc=_title(session.info),
               dynamic_ncols=True, mininterval=5.0)
    if step >= next_eval:
        run_eval()
        next_eval = step + cfg.eval_every
    while step < cfg.steps:
        if session.linear_probe_steps and agent.critic_linear_probe and step >= session.linear_probe_steps:
            agent.set_critic_linear_probe(False)
        obs, info = env.reset(seed=cfg.seed * 1_000_003 + episodes)
        instruction = session.info.instruction or info['instruction']
        embedding = session.embedder(instruction)
        demonstration = expert is not None and episodes < cfg.prefill_expert_episodes
        if demonstration:
            expert.reset()
        record: dict[str, list[np.ndarray]] = defaultdict(list)
        _append_obs(record, obs, _stored_cameras(cfg))
        done = False
        while not done and step < cfg.steps:
            if demonstration:
                action = expert.act(env.unwrapped.scene).astype(np.float32)
            elif step < cfg.prefill_steps:
                action = rng.uniform(-1.0, 1.0, cfg.agent.action_dim).astype(np.float32)
            else:
                action, _ = agent.act(obs, embedding, explore=True)
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            record['action'].append(action)
            record['reward'].append(np.float32(reward))
            record['success'].append(bool(info['success']))
            _append_obs(record, obs, _stored_cameras(cfg))
            step += 1
            bar.update(1)
            if step > cfg.prefill_steps and step % cfg.update_every == 0 and replay.episodes:
                for key, value in agent.update(replay.sample(cfg.batch_size, rng, session.reward_key)).items():
                    sums[key] += value
                    counts[key] += 1
            if step - last_log >= cfg.log_every and counts:
                board.scalars(step, {k: sums[k] / counts[k] for k in sums}, 'train')
                sums.clear()
                counts.clear()
                last_log = step
        if len(record['action']) > cfg.agent.n_step:
            episode = _episode_arrays(record, instruction, embedding)
            if session.labeler is not None:
                vlm = session.labeler.label(f'ep{episodes}', episode['image_front'], instruction)
                episode['vlm_reward_raw'] = vlm
                episode['vlm_reward'] = (standardizer.update_and_standardize(instruction, vlm)
                                         if cfg.reward.standardize_rewards else vlm)
            replay.add(episode, step)
            instructions[instruction] += 1
            stats = {'return': float(episode['reward'].sum()), 'success': float(episode['success'].any()),
                     'length': len(episode['action']), 'replay_transitions': replay.transitions}
            if 'vlm_reward' in episode:
                stats['vlm_return'] = float(episode['vlm_reward_raw'].sum())
            board.scalars(step, stats, 'episode')
        episodes += 1
        if step >= next_eval or step >= cfg.steps:
            run_eval()
            next_eval = step + cfg.eval_every
        if step >= next_checkpoint or step >= cfg.steps:
            if session.info.mode == 'pretrain':
                atomic_write_text(paths.instructions, json.dumps(dict(instructions.most_common()), indent=1) + '\n')
            save()
            next_checkpoint = step + cfg.checkpoint_every
    bar.close()
    board.close()
    env.close()
    eval_env.close()
    lock.close()
    last = evals[-1]
    _print_end(session, last)
    return last


def _lock(paths: RunPaths) -> IO[str]:
    """An exclusive lock on RUN/lock for this process's lifetime (the OS drops it when the process dies, kill -9
    included): two processes never train the same run."""
    handle = open(paths.root / 'lock', 'a+')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RunError(f'{paths.root} is being trained by another process right now') from None
    return handle


def _stored_cameras(cfg: TrainConfig) -> tuple[str, ...]:
    """Cameras saved in replay: the agent's, plus the front camera (the VLM reward scores it)."""
    return tuple(dict.fromkeys(('front', *cfg.agent.cameras)))


def _append_obs(record: dict[str, list[np.ndarray]], obs: dict[str, np.ndarray], cameras: tuple[str, ...]) -> None:
    for camera in cameras:
        record[f'image_{camera}'].append(obs[f'image_{camera}'])
    record['state'].append(obs['state'])


def _episode_arrays(record: dict[str, list[Any]], instruction: str, embedding: np.ndarray) -> dict[str, np.ndarray]:
    episode = {key: np.stack(values) for key, values in record.items() if key.startswith('image_')}
    episode.update(state=np.stack(record['state']).astype(np.float32),
                   action=np.stack(record['action']).astype(np.float32),
                   reward=np.array(record['reward'], np.float32), success=np.array(record['success'], bool),
                   instruction=np.array(instruction), instruction_embedding=embedding.astype(np.float32))
    return episode


def _print_start(session: Session, step: int, checkpoint: Any, dropped: int, replay: EpisodeReplay) -> None:
    paths, info = session.paths, session.info
    what = 'starting' if step == 0 else f'resuming at env step {step}'
    print(f'{_title(info)}: {what} from {checkpoint}')
    if dropped:
        print(f'  dropped {dropped} replay episode(s) collected after that checkpoint')
    print(f'  run directory   {paths.root.resolve()}')
    print(f'  config          {paths.config}   (preset {session.config.preset}, seed {session.config.seed})')
    print(f'  text encoder    {info.text_encoder.describe()} ({info.text_encoder.path})')
    if info.instruction:
        print(f'  instruction     {info.instruction!r}')
    print(f'  replay          {paths.replay} ({len(replay.episodes)} episodes, {replay.transitions} transitions)')
    print(f'  tensorboard     tensorboard --logdir {paths.tensorboard}')


def _print_end(session: Session, last: dict[str, Any]) -> None:
    paths = session.paths
    print(f'{_title(session.info)}: done at env step {last["step"]}: eval success rate '
          f'{last["success_rate"]:.2f}, mean return {last["mean_return"]:.1f}')
    print(f'  checkpoints     {paths.root / "checkpoints"}')
    print(f'  evaluations     {paths.evals}')
    print(f'  learning curve  {paths.curve}')
    print(f'  videos          {paths.videos}')
    print(f'  tensorboard     {paths.tensorboard}')


def _title(info: RunInfo) -> str:
    return info.mode if info.task == info.mode else f'{info.mode} {info.task}'
