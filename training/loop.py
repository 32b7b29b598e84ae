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
from dataclasses import dataclass, field
from typing import IO, Any, Callable

import gymnasium
import numpy as np
import torch
import yaml
from tqdm import tqdm

from lamp_ros.fileio import atomic_write_text
from lamp_ros.teleop.stall import StallTakeover
from training.agent import DrQAgent
from training.checkpoint import (latest_checkpoint, load_checkpoint, numpy_rng_from_state, numpy_rng_state,
                                  save_checkpoint)
from training.config import LEGACY_VALUES, TrainConfig, replace, to_dict
from sim.experts import Expert, make_expert
from sim.privileged import privileged_state
from training.evaluate import evaluate, make_env
from training.interventions import before_takeover, intervention_segments
from training.replay import EpisodeReplay, mixed_sample
from training.run import DEMO_SEED_BASE, EVAL_SEED_BASE, RunError, RunInfo, RunPaths, update_config
from lamp_ros.video import write_video
from training.runlog import TensorBoard, plot_learning_curve, write_evals
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


def hashed_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings a checkpoint's hash covers: all but `steps` (a run can be extended) and the later-added
    settings of LEGACY_VALUES while they hold their legacy values (so older runs still resume)."""
    data = to_dict(replace(config, steps=1))
    for dotted, default in LEGACY_VALUES.items():
        *parents, key = dotted.split('.')
        node = data
        for parent in parents:
            node = node[parent]
        if node[key] == default:
            del node[key]
    return data


def run_hash(config: TrainConfig) -> str:
    """The config hash a checkpoint must match."""
    return hashlib.sha256(yaml.safe_dump(hashed_settings(config), sort_keys=False).encode()).hexdigest()[:16]


def initial_trainer_state(config: TrainConfig) -> dict[str, Any]:
    return {'episodes': 0, 'rng': numpy_rng_state(np.random.default_rng(config.seed)), 'evals': [],
            'reward_stats': {}, 'instructions': {}, 'next_eval': 0, 'next_checkpoint': config.checkpoint_every}


@dataclass
class Workspace:
    """The loop state of one training process (DrQ-v2's workspace): counters, RNG, replay, envs, logger.
    Everything that a checkpoint restores comes from `trainer_state`; `close` releases envs, logger and lock."""
    session: Session
    lock: IO[str]
    step: int
    episodes: int
    next_eval: int
    next_checkpoint: int
    rng: np.random.Generator
    standardizer: RewardStandardizer
    instructions: Counter
    evals: list[dict[str, Any]]
    replay: EpisodeReplay
    env: gymnasium.Env
    eval_env: gymnasium.Env
    expert: Expert | None                        # the scripted expert: prefill demonstrations, help (interventions)
    board: TensorBoard
    bar: tqdm
    demos: EpisodeReplay | None = None           # finetuning: the expert's episodes, sampled beside replay
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last_log: int = 0

    @property
    def cfg(self) -> TrainConfig:
        return self.session.config

    def trainer_state(self) -> dict[str, Any]:
        return {'episodes': self.episodes, 'rng': numpy_rng_state(self.rng), 'evals': self.evals,
                'reward_stats': self.standardizer.state(), 'instructions': dict(self.instructions),
                'next_eval': self.next_eval, 'next_checkpoint': self.next_checkpoint}

    def save(self) -> None:
        if self.session.info.mode == 'pretrain':
            atomic_write_text(self.session.paths.instructions,
                              json.dumps(dict(self.instructions.most_common()), indent=1) + '\n')
        save_checkpoint(self.session.paths.root, self.step, self.session.agent, run_hash(self.cfg),
                        self.trainer_state(), keep=self.cfg.keep_checkpoints)

    def run_eval(self) -> None:
        session, cfg, paths = self.session, self.cfg, self.session.paths
        result = evaluate(self.eval_env, session.agent, session.embedder,
                          [EVAL_SEED_BASE + k for k in range(cfg.eval_episodes)], session.info.instruction,
                          record_first=cfg.video)
        self.evals.append({'step': self.step, **result.summary()})
        self.board.scalars(self.step, result.summary(), 'eval')
        self.board.flush()
        write_evals(paths.evals, self.evals)
        plot_learning_curve(paths.curve, self.evals, f'{session.info.mode} {session.info.task} ({paths.root.name})')
        if cfg.video:
            write_video(paths.videos / f'eval_{self.step:09d}.mp4', result.frames, fps=10.0)
            self.board.video(self.step, 'eval/video', result.frames, fps=10.0)
        self.bar.set_postfix_str(f'eval success {result.success_rate:.2f} return {result.mean_return:.1f}')

    def act(self, obs: dict[str, np.ndarray], embedding: np.ndarray, demonstration: bool) -> np.ndarray:
        """The expert's action in a demonstration, random actions in the prefill of a run from scratch (a run
        from --init collects its prefill with the starting policy), else the exploring agent's."""
        if demonstration:
            return self.expert.act(self.env.unwrapped.scene).astype(np.float32)
        if self.step < self.cfg.prefill_steps and not self.session.info.init_run:
            return self.rng.uniform(-1.0, 1.0, self.cfg.agent.action_dim).astype(np.float32)
        return self.session.agent.act(obs, embedding, explore=True)[0]

    def update(self) -> None:
        """Agent updates at the configured rate after the prefill; TensorBoard rows every log_every steps."""
        cfg = self.cfg
        has_data = self.replay.episodes or (self.demos is not None and self.demos.episodes)
        if self.step > cfg.prefill_steps and self.step % cfg.update_every == 0 and has_data:
            for _ in range(cfg.updates_per_step):
                batch = mixed_sample(self.replay, self.demos, cfg.batch_size, cfg.finetune.demo_fraction, self.rng,
                                     self.session.reward_key, cfg.finetune.failure_is_terminal)
                for key, value in self.session.agent.update(batch).items():
                    self.sums[key] += value
                    self.counts[key] += 1
        if self.step - self.last_log >= cfg.log_every and self.counts:
            self.board.scalars(self.step, {k: self.sums[k] / self.counts[k] for k in self.sums}, 'train')
            self.sums.clear()
            self.counts.clear()
            self.last_log = self.step

    def rollout(self, seed: int, act: Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray],
                counted: bool, helped: bool = False) -> tuple[dict[str, np.ndarray], str]:
        """One episode on the training env; `counted` steps advance the run (and update the agent as they go);
        `helped`: the scripted expert takes over if the episode stalls (finetune.help_episodes), its steps
        flagged in 'intervention'. Returns the episode's arrays (replay's layout) and its instruction."""
        cfg, session = self.cfg, self.session
        obs, info = self.env.reset(seed=seed)
        instruction = session.info.instruction or info['instruction']
        embedding = session.embedder(instruction)
        record: dict[str, list[np.ndarray]] = defaultdict(list)
        self._append(record, obs)
        takeover = StallTakeover(cfg.finetune.stall_steps) if helped else None
        done = terminated = False
        while not done and (not counted or self.step < cfg.steps):
            operator = takeover is not None and takeover.drives(bool(info['episode_success']))
            action = self.expert.act(self.env.unwrapped.scene).astype(np.float32) if operator else act(obs, embedding)
            if takeover is not None:
                record['intervention'].append(operator)
            obs, reward, terminated, truncated, info = self.env.step(action)
            done = terminated or truncated
            record['action'].append(action)
            record['reward'].append(np.float32(reward))
            record['success'].append(bool(info['success']))
            self._append(record, obs)
            if counted:
                self.step += 1
                self.bar.update(1)
                self.update()
        return _episode_arrays(record, instruction, embedding, terminated), instruction

    def _append(self, record: dict[str, list[np.ndarray]], obs: dict[str, np.ndarray]) -> None:
        """One frame of the episode being recorded: the stored cameras, the state, and (privileged critic, sim
        only) the scene's privileged state."""
        for camera in _stored_cameras(self.cfg):
            record[f'image_{camera}'].append(obs[f'image_{camera}'])
        record['state'].append(obs['state'])
        if self.cfg.agent.privileged_dim:
            record['privileged'].append(privileged_state(self.env.unwrapped.scene))

    def run_episode(self) -> None:
        """One episode: act, step, update as it goes; store it (with r_VLM labels in pretraining)."""
        demonstration = self.expert is not None and self.episodes < self.cfg.prefill_expert_episodes
        helped = self.demos is not None and self.episodes < self.cfg.finetune.help_episodes
        episode, instruction = self.rollout(self.cfg.scene_seed_base + self.cfg.seed * 1_000_003 + self.episodes,
                                            lambda obs, embedding: self.act(obs, embedding, demonstration), True,
                                            helped and not demonstration)
        if len(episode['action']) > self.cfg.agent.n_step:
            self.store(episode, instruction)
        self.episodes += 1

    def fill_demos(self) -> None:
        """Play the scripted expert on the run's demo scenes until RUN/demo_replay holds finetune.demo_episodes
        episodes (resumable: a run killed while filling goes on where it stopped). Demo steps are not env steps
        of the run's budget: they are the demonstrations a person would give before training."""
        wanted, demos = self.cfg.finetune.demo_episodes, self.demos
        expert = make_expert(self.session.info.task)
        base = DEMO_SEED_BASE + self.cfg.seed * 10_000
        given = sum(e.end_step == 0 for e in demos.episodes)          # not the run's own (success_to_demos)
        for k in tqdm(range(given, wanted), desc='demonstrations', unit='episode', leave=False):
            episode, _ = self.rollout(base + k, lambda obs, embedding: expert.act(self.env.unwrapped.scene)
                                      .astype(np.float32), counted=False)
            if len(episode['action']) > self.cfg.agent.n_step:
                demos.add(episode, 0)
        successes = sum(bool(demos.load(e)['success'].any()) for e in demos.episodes)
        print(f'  demonstrations  {demos.directory} ({len(demos.episodes)} episodes, {successes} successful, '
              f'{demos.transitions} transitions)')

    def store(self, episode: dict[str, np.ndarray], instruction: str) -> None:
        labeler = self.session.labeler
        if labeler is not None:
            vlm = labeler.label(f'ep{self.episodes}', episode['image_front'], instruction)
            episode['vlm_reward_raw'] = vlm
            episode['vlm_reward'] = (self.standardizer.update_and_standardize(instruction, vlm)
                                     if self.cfg.reward.standardize_rewards else vlm)
        interventions = int(episode['intervention'].sum()) if 'intervention' in episode else 0
        own = before_takeover(episode) if interventions and self.cfg.finetune.takeover_is_failure else episode
        if len(own['action']) > self.cfg.agent.n_step:
            self.replay.add(own, self.step)
        if self.demos is not None:
            for segment in intervention_segments(episode, self.cfg.agent.n_step):
                self.demos.add(segment, self.step)
            if self.cfg.finetune.promotes(bool(episode['success'].any()), len(episode['action']), interventions > 0):
                self.demos.add(episode, self.step)
        self.instructions[instruction] += 1
        stats = {'return': float(episode['reward'].sum()), 'success': float(episode['success'].any()),
                 'length': len(episode['action']), 'replay_transitions': self.replay.transitions,
                 'interventions': interventions}
        if 'vlm_reward' in episode:
            stats['vlm_return'] = float(episode['vlm_reward_raw'].sum())
        self.board.scalars(self.step, stats, 'episode')

    def close(self) -> None:
        self.bar.close()
        self.board.close()
        self.env.close()
        self.eval_env.close()
        self.lock.close()


def open_workspace(session: Session) -> Workspace:
    """Lock the run, restore its newest checkpoint and build the loop state around it."""
    paths, agent = session.paths, session.agent
    lock = _lock(paths)
    if session.steps is not None and session.steps != session.config.steps:
        session.config = replace(session.config, steps=session.steps)
        update_config(paths, session.config)
    cfg = session.config
    torch.set_num_threads(cfg.threads)
    checkpoint = latest_checkpoint(paths.root)
    if checkpoint is None:
        lock.close()
        raise RuntimeError(f'{paths.root}: no checkpoint (every run is created with one at step 0)')
    payload = load_checkpoint(checkpoint, agent, run_hash(cfg))
    step, state = int(payload['step']), payload['trainer']
    standardizer = RewardStandardizer()
    standardizer.load_state(state['reward_stats'])
    replay = EpisodeReplay(paths.replay, cfg.replay.capacity, cfg.replay.memory_episodes,
                           _stored_cameras(cfg), cfg.agent.n_step, cfg.agent.privileged_dim > 0)
    dropped = replay.truncate_after(step)
    demos = _demo_replay(session)
    if demos is not None:                       # the expert's demos end at step 0; promoted successes (finetune.
        demos.truncate_after(step)              # success_to_demos) after the checkpoint go with their replay copies
    _print_start(session, step, checkpoint, dropped, replay)
    terminate = session.info.mode == 'finetune' and cfg.finetune.reward == 'success'
    return Workspace(
        session, lock, step, int(state['episodes']), int(state['next_eval']), int(state['next_checkpoint']),
        numpy_rng_from_state(state['rng']), standardizer, Counter(state['instructions']), state['evals'], replay,
        make_env(session.info.task, cfg.env, terminate), make_env(session.info.task, cfg.env, terminate),
        make_expert(session.info.task) if cfg.prefill_expert_episodes or cfg.finetune.help_episodes else None,
        TensorBoard(paths.tensorboard),
        tqdm(total=cfg.steps, initial=step, unit='step', desc=_title(session.info), dynamic_ncols=True,
             mininterval=5.0), demos, last_log=step)


def _demo_replay(session: Session) -> EpisodeReplay | None:
    cfg = session.config
    if session.info.mode != 'finetune' or not (cfg.finetune.demo_episodes or cfg.finetune.help_episodes):
        return None
    return EpisodeReplay(session.paths.demo_replay, cfg.replay.capacity, cfg.replay.memory_episodes,
                         _stored_cameras(cfg), cfg.agent.n_step, cfg.agent.privileged_dim > 0)


def train(session: Session) -> dict[str, Any]:
    """Run (or continue) the session until config.steps env steps; return the last evaluation."""
    ws = open_workspace(session)
    try:
        if ws.demos is not None:
            ws.fill_demos()
        if ws.step >= ws.next_eval:
            ws.run_eval()
            ws.next_eval = ws.step + ws.cfg.eval_every
        while ws.step < ws.cfg.steps:
            if session.linear_probe_steps and session.agent.critic_linear_probe \
                    and ws.step >= session.linear_probe_steps:
                session.agent.set_critic_linear_probe(False)
            ws.run_episode()
            if ws.step >= ws.next_eval or ws.step >= ws.cfg.steps:
                ws.run_eval()
                ws.next_eval = ws.step + ws.cfg.eval_every
            if ws.step >= ws.next_checkpoint or ws.step >= ws.cfg.steps:
                ws.save()
                ws.next_checkpoint = ws.step + ws.cfg.checkpoint_every
    finally:
        ws.close()
    _print_end(session, ws.evals[-1])
    return ws.evals[-1]


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


def _episode_arrays(record: dict[str, list[Any]], instruction: str, embedding: np.ndarray,
                    terminated: bool) -> dict[str, np.ndarray]:
    episode = {key: np.stack(values) for key, values in record.items() if key.startswith('image_')}
    if 'privileged' in record:
        episode['privileged'] = np.stack(record['privileged']).astype(np.float32)
    if 'intervention' in record:
        episode['intervention'] = np.array(record['intervention'], bool)
    episode.update(state=np.stack(record['state']).astype(np.float32),
                   action=np.stack(record['action']).astype(np.float32),
                   reward=np.array(record['reward'], np.float32), success=np.array(record['success'], bool),
                   terminated=np.array(bool(terminated)),
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
