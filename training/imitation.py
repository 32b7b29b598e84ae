"""`lamp-train imitate`: one multi-task, language-conditioned policy learned from the scripted Markov experts.

    round 0   expert demos per task (noisy execution, clean labels), then behaviour cloning
    round r   DAgger (imitation.dagger_rounds, default 0: it made the policy worse here, docs/training.md): the
              student drives, the expert labels every state it visits; clone on all data so far
    after each round: success per task on held-out scenes (TensorBoard, evals.json, learning curve, video)

The run is an ordinary run directory (training/run.py) whose checkpoints hold a full DrQ agent (the cloned
encoder and actor, a fresh critic), so `lamp-export RUN` makes its bundle and `lamp-train finetune --init RUN`
starts RL from it. Demo shards (RUN/demos/round<r>_<task>_<k>.npz) and checkpoints are written atomically; a
restarted command keeps every finished shard and resumes from the newest checkpoint. Only the encoder and
actor are exported: the auxiliary head (the task's focus point from the image) exists in training only.
"""
from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from lamp_ros.fileio import atomic_write_bytes
from models.bundle import camera_input
from sim.tasks import DOWNSTREAM_TASKS
from training.agent import DrQAgent
from training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from training.config import ImitationSettings, TrainConfig, differences, replace
from training.evaluate import evaluate, make_env
from training.loop import run_hash
from training.phrases import training_phrases
from training.rollouts import ShardSpec, in_workspace, run_shard
from training.run import (EVAL_SEED_BASE, RunInfo, RunPaths, check_new_run_dir, now, read_run, update_config,
                          write_new_run)
from lamp_ros.video import write_video
from training.runlog import TensorBoard, plot_learning_curve, write_evals
from training.runs import init_state_bounds
from training.text import InstructionEmbedder, default_source, load as load_text_encoder

TASK_SEED_STRIDE = 1_000_000          # training seeds: task index * stride + round * 100_000 + k (never eval's)
EPISODES_PER_SHARD = 10
OFFSET_SCALE_M, OFFSET_CLIP = 0.02, 5.0  # the focus point's offset from the TCP, in 2 cm units, within 10 cm:
#                                        the grasp-scale errors the policy must see weigh most


class BehaviourCloner:
    """The agent's policy trained by regression on expert labels, plus the auxiliary focus-point head.
    Quacks like DrQAgent for checkpoints (modules, optimizers, updates)."""

    def __init__(self, agent: DrQAgent, settings: ImitationSettings) -> None:
        self.agent = agent
        self.policy = agent.policy
        self.settings = settings
        outputs = 6 if settings.aux_offset_weight > 0 else 3         # focus point [, its offset from the TCP]
        self.aux_head = nn.Linear(self.policy.actor.policy[0].in_features, outputs)
        self.optimizer = torch.optim.Adam([*self.policy.parameters(), *self.aux_head.parameters()], lr=settings.lr)
        self.updates = 0
        self.critic_linear_probe = False

    def modules(self) -> dict[str, nn.Module]:
        return {**self.agent.modules(), 'aux_head': self.aux_head}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'bc_opt': self.optimizer}

    def set_critic_linear_probe(self, on: bool) -> None:
        self.agent.set_critic_linear_probe(on)

    def learning_rate(self) -> float:
        """Cosine decay from lr to lr * lr_final_fraction over the behaviour-cloning updates, then constant:
        the last updates average out the noise of large steps (DAgger rounds continue at the final rate)."""
        s = self.settings
        progress = min(self.updates / s.updates, 1.0)
        return s.lr * (s.lr_final_fraction + (1 - s.lr_final_fraction) * 0.5 * (1 + np.cos(np.pi * progress)))

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group['lr'] = self.learning_rate()
        images = [torch.from_numpy(self.agent.augment(batch[camera_input(c)][:, None]))     # DrQ's random shift
                  for c in self.policy.config.cameras]
        state, label = torch.from_numpy(batch['state']), torch.from_numpy(batch['label'])
        actor = self.policy.actor
        hidden = actor.hidden(self.policy.features(*images), state, torch.from_numpy(batch['instruction']))
        action = torch.tanh(actor.policy(hidden))
        focus = torch.from_numpy(batch['focus'])
        action_loss = F.mse_loss(action, label)
        predicted = self.aux_head(hidden)
        aux_loss = F.mse_loss(predicted[:, :3], actor.state_norm(F.pad(focus, (0, 1)))[:, :3])
        loss = action_loss + self.settings.aux_weight * aux_loss
        if self.settings.aux_offset_weight > 0:
            offset = torch.clamp((focus - state[:, :3]) / OFFSET_SCALE_M, -OFFSET_CLIP, OFFSET_CLIP)
            loss = loss + self.settings.aux_offset_weight * F.mse_loss(predicted[:, 3:], offset)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        self.agent.updates = self.updates
        gripper_right = ((action[:, 3] > 0) == (label[:, 3] > 0)).float().mean()
        return {'action_loss': action_loss.item(), 'aux_loss': aux_loss.item(),
                'gripper_accuracy': gripper_right.item()}


EXPERT, STUDENT = 'expert', 'student'         # who drove: round 0's demos, or DAgger rounds' student episodes


@dataclass
class Dataset:
    """Every shard of the run in memory. A batch gives each task equal weight and, within a task, the expert's
    demos `demo_fraction` of it once DAgger data exists (the rest from the student's episodes): aggregating
    everything uniformly let the student's many stuck steps outweigh the demos, and push and tap got worse
    with each round. Each row's instruction is one of its task's training phrasings drawn at random (the
    expert's labels do not depend on the phrasing), so every phrasing meets every demo."""
    embeddings: dict[str, np.ndarray]          # task -> [training phrase, embedding]
    demo_fraction: float
    cameras: tuple[str, ...] = ('front',)
    parts: dict[tuple[str, str], list[dict[str, np.ndarray]]] = field(default_factory=dict)
    _merged: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)

    def add(self, task: str, source: str, shard: dict[str, np.ndarray]) -> None:
        """Keep the shard's steps whose object is on the table (see rollouts.in_workspace) and, of the expert's
        demos, only the episodes it finished: a fumble can leave a scene it cannot recover (the cup lying
        wedged), and looping there teaches nothing."""
        missing = [k for k in self.fields if k not in shard]
        if missing:
            raise ValueError(f'{task}: a demo shard lacks {missing} (recorded for other cameras than '
                             f'{list(self.cameras)}?); collect the demos in a new run directory')
        keep = in_workspace(shard['focus'])
        if source == EXPERT and 'seeds' in shard:
            keep &= np.isin(shard['episode'], shard['seeds'][shard['success']])
        per_episode = ('success', 'seeds')
        self.parts.setdefault((task, source), []).append({k: v[keep] for k, v in shard.items() if k not in per_episode})
        self._merged.pop((task, source), None)

    @property
    def fields(self) -> tuple[str, ...]:
        """What a batch reads of each step (the instruction is drawn per row)."""
        return (*(camera_input(c) for c in self.cameras), 'state', 'label', 'focus')

    def steps(self) -> int:
        return sum(len(p['label']) for parts in self.parts.values() for p in parts)

    def _group(self, key: tuple[str, str]) -> dict[str, np.ndarray]:
        if key not in self._merged:
            self._merged[key] = {k: np.concatenate([p[k] for p in self.parts[key]]) for k in self.fields}
        return self._merged[key]

    def _sources(self, task: str, n: int, rng: np.random.Generator) -> dict[str, int]:
        """How many of the task's n rows come from the expert's demos and from the student's episodes."""
        if (task, STUDENT) not in self.parts:
            return {EXPERT: n}
        expert = int(n * self.demo_fraction + rng.random())          # the share, rounded at random
        return {EXPERT: expert, STUDENT: n - expert}

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        tasks = sorted({task for task, _ in self.parts})
        counts = np.bincount(rng.integers(len(tasks), size=batch_size), minlength=len(tasks))
        rows: dict[str, list[np.ndarray]] = {k: [] for k in (*self.fields, 'instruction')}
        for task, n in zip(tasks, counts):
            for source, m in self._sources(task, int(n), rng).items():
                if m == 0:
                    continue
                data = self._group((task, source))
                if len(data['label']) == 0:
                    raise ValueError(f'{task}: no {source} steps to learn from (every episode failed or left the '
                                     'table); collect more or longer episodes (imitation.demos_per_task, '
                                     'imitation.max_episode_steps)')
                idx = rng.integers(len(data['label']), size=m)
                for key in self.fields:
                    rows[key].append(data[key][idx])
                rows['instruction'].append(self.embeddings[task][rng.integers(len(self.embeddings[task]), size=m)])
        return {k: np.concatenate(v) for k, v in rows.items()}


@dataclass
class Imitation:
    """The loop state of one imitation run."""
    paths: RunPaths
    config: TrainConfig
    info: RunInfo
    learner: BehaviourCloner
    embedder: InstructionEmbedder
    dataset: Dataset
    rng: np.random.Generator
    board: TensorBoard
    evals: list[dict[str, Any]]

    @property
    def settings(self) -> ImitationSettings:
        return self.config.imitation

    def round_end(self, r: int) -> int:
        return self.settings.updates + r * self.settings.dagger_updates

    def save(self) -> None:
        trainer = {'evals': self.evals, 'rng': self.rng.bit_generator.state}
        save_checkpoint(self.paths.root, self.learner.updates, self.learner, imitation_hash(self.config), trainer,
                        keep=self.config.keep_checkpoints)


def imitation_hash(config: TrainConfig) -> str:
    """The config hash a checkpoint must match; the number of DAgger rounds is left out (as its default), so a
    finished run can be extended with more rounds."""
    rounds = ImitationSettings().dagger_rounds
    return run_hash(replace(config, imitation=replace(config.imitation, dagger_rounds=rounds)))


def extend(run_dir: Path, requested: TrainConfig) -> None:
    """Apply a requested config to an existing run: only more DAgger rounds may change."""
    paths, saved, _ = read_run(run_dir)
    wanted = replace(saved, imitation=replace(saved.imitation, dagger_rounds=requested.imitation.dagger_rounds))
    derived = ('imitation.dagger_rounds', 'agent.embedding_dim')        # the latter: set from the text encoder
    changed = [d for d in differences(saved, requested) if not d.startswith(derived)]
    if changed:
        raise ValueError(f'{run_dir} exists with another config ({"; ".join(changed)}); resume it without config '
                         'options, or only --set imitation.dagger_rounds=N to add rounds')
    if wanted != saved:
        update_config(paths, wanted)


# --- creation and resume --------------------------------------------------------------------------------------

def create(run_dir: Path, config: TrainConfig) -> None:
    """A new imitation run: config, the text encoder, a step-0 checkpoint, run.json last."""
    unknown = [t for t in config.imitation.tasks if t not in DOWNSTREAM_TASKS]
    if unknown or not config.imitation.tasks:
        raise ValueError(f'imitation.tasks {list(config.imitation.tasks)}: unknown {unknown}; '
                         f'choose from {sorted(DOWNSTREAM_TASKS)}')
    paths = check_new_run_dir(run_dir)
    source = default_source(paths.root, config.text, config.seed)
    encoder, _ = load_text_encoder(source)
    config = replace(config, agent=replace(config.agent, embedding_dim=encoder.dim))
    agent = DrQAgent(config.agent, seed=config.seed)
    init_state_bounds(agent)
    learner = BehaviourCloner(agent, config.imitation)
    save_checkpoint(paths.root, 0, learner, imitation_hash(config), {'evals': [], 'rng': None})
    write_new_run(paths, config, RunInfo('imitate', 'all', source, created=now()))


def open_run(run_dir: Path) -> Imitation:
    paths, config, info = read_run(run_dir)
    if info.mode != 'imitate':
        raise ValueError(f'{run_dir} is a {info.mode} run, not an imitation run')
    encoder, vocab = load_text_encoder(info.text_encoder)
    embedder = InstructionEmbedder(encoder, vocab, config.text.max_tokens)
    agent = DrQAgent(config.agent, seed=config.seed)
    learner = BehaviourCloner(agent, config.imitation)
    payload = load_checkpoint(latest_checkpoint(paths.root), learner, imitation_hash(config))
    learner.updates = int(payload['agent_updates'])
    trainer = payload['trainer']
    rng = np.random.default_rng(config.seed)
    if trainer['rng'] is not None:
        rng.bit_generator.state = trainer['rng']
    embeddings = {task: np.stack([embedder(p) for p in training_phrases(task, config.imitation.train_phrases)])
                  for task in config.imitation.tasks}
    dataset = Dataset(embeddings, config.imitation.demo_fraction, config.agent.cameras)
    return Imitation(paths, config, info, learner, embedder, dataset, rng, TensorBoard(paths.tensorboard),
                     list(trainer['evals']))


# --- rounds ---------------------------------------------------------------------------------------------------

def shard_specs(run: Imitation, r: int) -> list[tuple[Path, ShardSpec]]:
    """Every shard of round r with its file; round 0 is the expert's, later rounds the student's."""
    s, size = run.settings, run.config.env.image_size
    episodes = s.demos_per_task if r == 0 else s.dagger_episodes_per_task
    student = None
    if r > 0:
        weights = {k: v.clone() for k, v in run.learner.policy.state_dict().items()}
        student = {'config': run.config.agent, 'weights': weights}
    specs = []
    for t, task in enumerate(run.settings.tasks):
        base = t * TASK_SEED_STRIDE + r * 100_000
        for k in range(0, episodes, EPISODES_PER_SHARD):
            seeds = tuple(range(base + k, base + min(k + EPISODES_PER_SHARD, episodes)))
            spec = ShardSpec(task, seeds, size, run.config.env.render_scale, s.max_episode_steps,
                             s.steps_after_success, run.dataset.embeddings[task], s.noise_std, s.noisy_fraction,
                             student, s.fumble_fraction, run.config.agent.cameras)
            specs.append((run.paths.root / 'demos' / f'round{r}_{task}_{k // EPISODES_PER_SHARD:04d}.npz', spec))
    return specs


def collect(run: Imitation, r: int, on_ray: bool = False) -> None:
    """Make the missing shards of round r (in worker processes, or as Ray tasks on the cluster connected to: a
    shard depends only on its spec, so the same either way), load all of them into the dataset."""
    specs = shard_specs(run, r)
    _make_missing([(path, spec) for path, spec in specs if not path.is_file()], r, run.settings.workers, on_ray)
    successes: dict[str, list[bool]] = {}
    for path, spec in specs:
        with np.load(path) as data:
            shard = {k: data[k] for k in data.files}
        run.dataset.add(spec.task, EXPERT if r == 0 else STUDENT, shard)
        successes.setdefault(spec.task, []).extend(shard['success'].tolist())
    rates = {task: float(np.mean(v)) for task, v in successes.items()}
    run.board.scalars(r, {f'driver_success/{task}': v for task, v in rates.items()}, 'collect')
    print(f'round {r}: {run.dataset.steps()} labelled steps; driver success ' +
          ', '.join(f'{task} {v:.2f}' for task, v in rates.items()), flush=True)


def _make_missing(missing: list[tuple[Path, ShardSpec]], r: int, workers: int, on_ray: bool) -> None:
    """Play and write the shards not on disk yet, with a progress bar in episodes."""
    if not missing:
        return
    missing[0][0].parent.mkdir(parents=True, exist_ok=True)
    what = 'expert demos' if r == 0 else f'DAgger round {r}'
    with tqdm(total=sum(len(s.seeds) for _, s in missing), desc=what, unit='episode', dynamic_ncols=True) as bar:
        for i, shard in _shards(missing, workers, on_ray):
            _write_shard(missing[i][0], shard)
            bar.update(len(missing[i][1].seeds))


def _shards(missing: list[tuple[Path, ShardSpec]], workers: int, on_ray: bool
            ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(index into missing, its shard) as they are made."""
    if on_ray:
        from lamp_ros.scale.cluster import fan_out_as_done
        yield from fan_out_as_done(run_shard, [spec for _, spec in missing])
        return
    with ProcessPoolExecutor(workers, mp_context=get_context('spawn')) as pool:
        futures = [pool.submit(run_shard, spec) for _, spec in missing]
        for i, future in enumerate(futures):
            yield i, future.result()                      # a dead worker raises BrokenProcessPool here


def _write_shard(path: Path, shard: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **shard)
    atomic_write_bytes(path, buffer.getvalue())


def clone(run: Imitation, until: int) -> None:
    """Behaviour-cloning updates until the learner has made `until` of them, checkpointing on the way."""
    s = run.settings
    if run.learner.updates >= until:
        return
    torch.set_num_threads(run.config.threads)
    bar = tqdm(total=until, initial=run.learner.updates, desc='behaviour cloning', unit='update',
               dynamic_ncols=True, mininterval=5.0)
    sums: dict[str, float] = {}
    while run.learner.updates < until:
        metrics = run.learner.update(run.dataset.sample(s.batch_size, run.rng))
        for key, value in metrics.items():
            sums[key] = sums.get(key, 0.0) + value
        bar.update(1)
        if run.learner.updates % 100 == 0:
            run.board.scalars(run.learner.updates, {k: v / 100 for k, v in sums.items()}, 'train')
            bar.set_postfix_str(f"loss {sums['action_loss'] / 100:.4f}")
            sums.clear()
        if run.learner.updates % s.checkpoint_every == 0 or run.learner.updates == until:
            run.save()
    bar.close()


def _eval_task(run: Imitation, task: str, frames: list[np.ndarray]) -> float:
    """Success rate of the deterministic policy (torch) on the task's held-out scenes; the first episode's
    frames are appended to `frames`. Episodes end at success."""
    env, seeds = make_env(task, run.config.env), [EVAL_SEED_BASE + k for k in range(run.settings.eval_episodes)]
    result = evaluate(env, run.learner.agent, run.embedder, seeds, record_first=True, stop_at_success=True)
    env.close()
    frames.extend(result.frames)
    return result.success_rate


def evaluate_round(run: Imitation, r: int) -> None:
    """Every task on held-out scenes after round r: evals.json, TensorBoard, learning curve, one video."""
    if any(e['round'] == r for e in run.evals):
        return
    frames: list[np.ndarray] = []
    run.learner.policy.eval()
    row: dict[str, Any] = {'round': r, 'step': run.learner.updates,
                           **{task: _eval_task(run, task, frames) for task in run.settings.tasks}}
    run.learner.policy.train()
    row['success_rate'] = float(np.mean([row[t] for t in run.settings.tasks]))
    row['mean_return'] = 0.0                         # not measured here; the learning curve's second panel
    run.evals.append(row)
    run.board.scalars(run.learner.updates, {t: row[t] for t in (*run.settings.tasks, 'success_rate')}, 'eval')
    run.board.flush()
    write_evals(run.paths.evals, run.evals)
    plot_learning_curve(run.paths.curve, run.evals, f'imitation ({run.paths.root.name}); x = BC updates')
    write_video(run.paths.videos / f'eval_round{r}.mp4', frames, fps=10.0)
    run.board.video(run.learner.updates, 'eval/video', frames, fps=10.0)
    run.save()
    print(f'round {r} evaluation ({run.settings.eval_episodes} held-out scenes per task): ' +
          ', '.join(f'{t} {row[t]:.2f}' for t in run.settings.tasks), flush=True)


def imitate(run_dir: Path, requested: TrainConfig | None, on_ray: bool = False) -> dict[str, Any]:
    """Create (or resume) an imitation run and run it to the end; return the last evaluation. `on_ray`: demos
    and DAgger episodes as Ray tasks on the cluster connected to (lamp_ros.scale.cluster.connect)."""
    run_dir = Path(run_dir)
    if not (run_dir / 'run.json').is_file():
        create(run_dir, requested or TrainConfig())
    elif requested is not None:
        extend(run_dir, requested)
    run = open_run(run_dir)
    print(f'imitation run {run.paths.root.resolve()}: tasks {", ".join(run.settings.tasks)}; '
          f'text encoder {run.info.text_encoder.describe()}; at update {run.learner.updates}\n'
          f'  tensorboard --logdir {run.paths.tensorboard}', flush=True)
    try:
        for r in range(run.settings.dagger_rounds + 1):
            if r > 0 and run.learner.updates < run.round_end(r - 1):
                raise RuntimeError(f'{run_dir}: round {r - 1} is not trained yet')   # never: rounds run in order
            collect(run, r, on_ray)
            clone(run, run.round_end(r))
            evaluate_round(run, r)
    finally:
        run.board.close()
    print(f'done: evaluations in {run.paths.evals}, curve {run.paths.curve}, videos {run.paths.videos}\n'
          f'  export: lamp-export {run.paths.root} --out BUNDLE', flush=True)
    return run.evals[-1]
