"""Typed training configuration: one frozen dataclass tree, presets, YAML round trip, dotted overrides.

Presets:
    debug   tiny networks, 32x32 images, short episodes, a few hundred steps: tests, smoke runs (seconds)
    cpu     small networks (DrQ-v2 sized down), 64x64 front camera: learns push_button on a 2-core CPU
    paper   LAMP-sized budgets (1M env steps, 128x128 images, front + wrist) and DrQ-v2's full network: a GPU

Every run saves its resolved config as RUN/config.yaml; `load_yaml(dump_yaml(c)) == c` for every config.
Names follow LAMP's configs.yaml where a setting has a LAMP counterpart (noted beside it).
"""
from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

import yaml

from lamp_ros.contract import FINETUNE_EXPLORE_STD
from training.agent.config import AgentConfig


@dataclass(frozen=True)
class EnvSettings:
    image_size: int = 64
    randomize: bool = True                 # visual domain randomization (LAMP: randomize)
    episode_steps: int = 150               # LAMP's time_limit; shorter only for tests
    render_scale: int = 2                  # render 2x and area-resize: what the robot's policy node sees
                                           # (sim.config.SceneConfig.render_scale); 1 in the debug preset


@dataclass(frozen=True)
class ReplaySettings:
    capacity: int = 100_000                # transitions kept on disk; the oldest episodes are deleted beyond it
    memory_episodes: int = 1_000           # LRU of episodes held in RAM (bounded memory)


@dataclass(frozen=True)
class PretrainRewardSettings:
    """r = alpha * vlm_scale * r_VLM + (1 - alpha) * novelty_scale * r_novelty (LAMP: expl_extr_scale 0.1 and
    expl_intr_scale 0.9; its reward normalizers have momentum 1.0, i.e. unit scales)."""
    alpha: float = 0.1
    vlm_scale: float = 1.0
    novelty_scale: float = 1.0
    standardize_rewards: bool = False      # LAMP: standardize_rewards (per-instruction running mean/std of r_VLM)
    image_size: int = 0                    # frames are resized to this for the reward model (0: as rendered)


@dataclass(frozen=True)
class FinetuneSettings:
    tune_instruction: bool = False         # LAMP: tune_instruction
    num_tune_instructions: int = 10        # LAMP: num_tune_instructions (task phrases + pretraining instructions)
    tune_episodes: int = 1                 # episodes per candidate (LAMP: 1)
    critic_linear_probe: bool = False      # LAMP: critic_linear_probe (its finetuning command sets it)
    linear_probe_steps: int = 0            # 0: the probe lasts the whole run, as LAMP; K > 0: unfreeze after K steps
    # RLPD-style finetuning from demonstrations (docs/training.md, "Finetuning that improves a policy")
    reward: str = 'success'                # 'success': 1 at the task's success, which ends the episode (what a
                                           # robot can report); 'task': the simulator's shaped reward, time limit
    demo_episodes: int = 20                # scripted-expert episodes in RUN/demo_replay (HIL-SERL: 20 demos)
    demo_fraction: float = 0.5             # share of each batch drawn from the demos (RLPD: symmetric 0.5)
    bc_weight: float = 1.0                 # behaviour cloning on the demo rows beside -Q ...
    bc_decay_steps: int = 10_000           # ... decaying linearly to 0 over this many updates (0: constant)
    bc_q_filter: bool = False              # BC only where the critic values the demo's action above the actor's
                                           # own (Q-filter, Nair et al. 2018): a slow success's hovering is not
                                           # cloned once the critic knows better (with success_to_demos)
    critic_layernorm: bool = True          # LayerNorm in the Q heads (RLPD)
    critic_heads: int = 2                  # Q heads; the TD target takes the min of 2 at random (RLPD: 10)
    critic_warmup_updates: int = 500       # the actor waits while the fresh critic learns
    step_penalty: float = 0.0              # subtracted from every step's reward (success reward: a cost per step)
    reference_actor: bool = False          # IBRL: the frozen start proposes actions beside the actor's; Q picks
    actor_objective: str = 'q'             # 'q': -Q + BC (DrQ-v2, RLPD); 'crr': regress onto the batch's actions
                                           # the critic values above the actor's own (CRR's binary filter)
    explore_std: float = FINETUNE_EXPLORE_STD  # constant exploration noise (0: the agent's std schedule, 1 -> 0.1)
    gripper_noise: float = 0.0             # gripper exploration noise as a fraction of explore_std: with none the
                                           # gripper follows the policy (BC) instead of flickering open mid-grasp
    success_to_demos: bool = False         # the run's own successful episodes join the demo buffer (self-imitation,
                                           # Oh et al. 2018): the BC term then clones what worked, not only the demos
    success_to_demos_max_steps: int = 0    # ... only those that succeeded within this many steps (0: any): a slow
                                           # success hovered before it grasped, and cloning it clones the hover
    failure_is_terminal: bool = False      # an episode that ran out of time without success ends there (value 0
                                           # after its last step) instead of bootstrapping from the critic: the
                                           # time limit is the task's, so stalling until it runs out is failure
    help_episodes: int = 0                 # sim: in the run's first this many episodes the scripted expert takes
                                           # over when the policy stalls (HIL-SERL's interventions; what the
                                           # graph's scripted operator does): flagged, counted as env steps, its
    stall_steps: int = 15                  # stretches join the demo buffer; a stall: this many steps, no success
    takeover_is_failure: bool = False      # a helped episode enters replay only up to the takeover, ending there as
                                           # a failure (value 0 after it; RLIF): the operator's rescues do not
                                           # make the states the policy stalled in look good to the critic
    privileged_critic: bool = False        # sim-only: the critic also sees the simulator's privileged state
                                           # (sim.privileged: the focus point, its offset from the TCP, the task's
                                           # progress); the policy and its bundle still see only what a robot has

    def problems(self) -> list[str]:
        """What is wrong with these settings (TrainConfig refuses a config with any)."""
        problems = []
        if self.reward not in FINETUNE_REWARDS:
            problems.append(f'finetune.reward {self.reward!r} must be one of {FINETUNE_REWARDS}')
        if not 0.0 <= self.demo_fraction <= 1.0:
            problems.append(f'finetune.demo_fraction {self.demo_fraction} must be in [0, 1]')
        if self.failure_is_terminal and self.reward != 'success':
            problems.append("finetune.failure_is_terminal needs finetune.reward 'success' (episodes that end at "
                            f'success), got {self.reward!r}')
        for name in ('demo_episodes', 'bc_weight', 'bc_decay_steps', 'critic_warmup_updates', 'explore_std',
                     'gripper_noise', 'step_penalty', 'success_to_demos_max_steps', 'help_episodes'):
            if getattr(self, name) < 0:
                problems.append(f'finetune.{name} must be >= 0, got {getattr(self, name)}')
        if self.stall_steps < 1:
            problems.append(f'finetune.stall_steps must be >= 1, got {self.stall_steps}')
        return problems

    def promotes(self, success: bool, steps: int, intervened: bool = False) -> bool:
        """Whether one of the run's own episodes joins the demo buffer (success_to_demos): not one an operator
        helped (its stretches are demos already; the policy's part before them is what failed)."""
        limit = self.success_to_demos_max_steps
        return self.success_to_demos and success and not intervened and (limit == 0 or steps <= limit)


# Settings added after runs existed, and the value every older run had: an older config.yaml without them reads
# them at these values, and a run's config hash (training.loop) leaves them out while they hold them.
LEGACY_VALUES: dict[str, Any] = {
    'prefill_expert_episodes': 0, 'updates_per_step': 1, 'imitation.lr_final_fraction': 1.0, 'scene_seed_base': 0,
    'agent.critic_layernorm': False, 'agent.critic_heads': 2, 'agent.bc_weight': 0.0, 'agent.bc_decay_updates': 0,
    'agent.critic_warmup_updates': 0, 'agent.gripper_noise': 1.0, 'agent.step_penalty': 0.0,
    'finetune.reward': 'task', 'finetune.demo_episodes': 0, 'finetune.demo_fraction': 0.5,
    'finetune.bc_weight': 0.0, 'finetune.bc_decay_steps': 0, 'finetune.critic_layernorm': False,
    'finetune.critic_heads': 2, 'finetune.step_penalty': 0.0, 'finetune.reference_actor': False,
    'agent.reference_actor': False, 'agent.actor_objective': 'q', 'finetune.actor_objective': 'q',
    'finetune.critic_warmup_updates': 0, 'finetune.explore_std': 0.0, 'finetune.gripper_noise': 1.0,
    'finetune.success_to_demos': False, 'finetune.bc_q_filter': False, 'agent.bc_q_filter': False,
    'finetune.success_to_demos_max_steps': 0, 'finetune.failure_is_terminal': False,
    'finetune.privileged_critic': False, 'agent.privileged_dim': 0, 'finetune.help_episodes': 0,
    'finetune.stall_steps': 15, 'finetune.takeover_is_failure': False, 'agent.recon_weight': 0.0,
}
FINETUNE_REWARDS = ('success', 'task')


@dataclass(frozen=True)
class TextSettings:
    """The instruction encoder when no R3M checkpoint provides one: all-MiniLM-L6-v2 (pretrained, offline), or a
    small random DistilBERT saved with the run (tests)."""
    encoder: str = 'minilm'                # 'minilm' or 'random'
    max_tokens: int = 32                   # tokens per instruction, [CLS] and [SEP] included (= the bundle's)
    random_layers: int = 2
    random_dim: int = 768
    random_heads: int = 12
    random_hidden: int = 3072


@dataclass(frozen=True)
class ImitationSettings:
    """`lamp-train imitate`: expert demos (noisy execution, clean labels), behaviour cloning, DAgger rounds."""
    tasks: tuple[str, ...] = ('push_button', 'pick_up_cup', 'take_lid_off_saucepan', 'close_microwave', 'turn_tap')
    train_phrases: int = 2                 # each task's first K sim phrases (+ training/phrases.py's) are trained on
    demos_per_task: int = 600             # 300 -> 600 lifted cup 39 -> 42, lid 32 -> 41 of 50; 1200 no more
    noisy_fraction: float = 0.5            # demos executed with N(0, noise_std) on the motion dims ...
    noise_std: float = 0.3                 # ... but labelled with the expert's clean action
    fumble_fraction: float = 0.3           # pick demos with one scripted missed grasp the expert recovers
                                           # from (training/rollouts.Fumble); docs/training.md
    max_episode_steps: int = 80            # demo and DAgger episodes (evaluation uses env.episode_steps)
    steps_after_success: int = 8           # keep recording this long after success: the policy learns to hold
    dagger_rounds: int = 0                 # DAgger made push and tap worse here (docs/training.md): off
    dagger_episodes_per_task: int = 60
    updates: int = 24_000                  # behaviour-cloning updates on the expert demos
    dagger_updates: int = 4_000            # more updates after each DAgger round (on all data so far)
    demo_fraction: float = 0.5             # share of each task's batch rows from the expert's demos once DAgger
                                           # data exists (the rest: the student's episodes, expert-labelled)
    batch_size: int = 128
    lr: float = 3e-4
    lr_final_fraction: float = 1.0         # cosine decay of lr to this fraction over the BC updates (1: constant)
    aux_weight: float = 1.0                # auxiliary head: regress the task's focus point (training only)
    aux_offset_weight: float = 1.0         # and its offset from the TCP (0 leaves that target out)
    eval_episodes: int = 10                # per task, held-out scenes, after each round
    checkpoint_every: int = 1_000          # updates
    workers: int = 2                       # processes collecting episodes


@dataclass(frozen=True)
class TrainConfig:
    preset: str = 'cpu'
    seed: int = 0
    steps: int = 100_000                   # env steps of the run (LAMP: steps)
    prefill_steps: int = 4_000             # random actions before learning (DrQ-v2: num_seed_frames)
    scene_seed_base: int = 1_500_000_000   # training scenes: base + seed * 1_000_003 + episode (apart from the
                                           # imitation stage's demo scenes, 0.., and the evaluation scenes)
    prefill_expert_episodes: int = 0       # the run's first episodes played by the scripted expert (sim.experts):
                                           # demonstrations in replay, inside the prefill; 0 = none (LAMP)
    update_every: int = 2                  # env steps per agent update (LAMP: train_every 2)
    updates_per_step: int = 1              # agent updates at each of those steps (RLPD's update-to-data ratio)
    batch_size: int = 128
    eval_every: int = 10_000               # env steps (LAMP: eval_every)
    eval_episodes: int = 10                # (LAMP: eval_eps)
    checkpoint_every: int = 10_000         # env steps; taken at the end of the episode that crosses it
    keep_checkpoints: int = 2
    log_every: int = 1_000                 # env steps between TensorBoard rows of the update metrics
    video: bool = True                     # an mp4 of the first episode of each evaluation
    threads: int = 1                       # torch threads
    agent: AgentConfig = field(default_factory=AgentConfig)
    env: EnvSettings = field(default_factory=EnvSettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    reward: PretrainRewardSettings = field(default_factory=PretrainRewardSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    text: TextSettings = field(default_factory=TextSettings)
    imitation: ImitationSettings = field(default_factory=ImitationSettings)

    def __post_init__(self) -> None:
        problems = self._loop_problems()
        if self.agent.image_size != self.env.image_size:
            problems.append(f'agent.image_size {self.agent.image_size} != env.image_size {self.env.image_size}')
        if not 0.0 <= self.reward.alpha <= 1.0:
            problems.append(f'reward.alpha {self.reward.alpha} must be in [0, 1]')
        if self.env.episode_steps <= self.agent.n_step:
            problems.append(f'env.episode_steps {self.env.episode_steps} must exceed agent.n_step {self.agent.n_step}')
        if not 0.0 <= self.imitation.lr_final_fraction <= 1.0:
            problems.append(f'imitation.lr_final_fraction {self.imitation.lr_final_fraction} must be in [0, 1]')
        problems += self.finetune.problems()
        if self.text.encoder not in ('minilm', 'random'):
            problems.append(f"text.encoder {self.text.encoder!r} must be 'minilm' or 'random'")
        if self.replay.capacity < self.env.episode_steps:
            problems.append(f'replay.capacity {self.replay.capacity} holds less than one episode')
        if problems:
            raise ValueError('TrainConfig: ' + '; '.join(problems))

    def _loop_problems(self) -> list[str]:
        """The loop's counts: >= 1, prefills >= 0."""
        problems = []
        for name in ('steps', 'update_every', 'updates_per_step', 'batch_size', 'eval_every', 'eval_episodes',
                     'checkpoint_every', 'keep_checkpoints', 'log_every', 'threads'):
            if getattr(self, name) < 1:
                problems.append(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.prefill_steps < 0:
            problems.append(f'prefill_steps must be >= 0, got {self.prefill_steps}')
        if self.prefill_expert_episodes < 0:
            problems.append(f'prefill_expert_episodes must be >= 0, got {self.prefill_expert_episodes}')
        return problems


def _debug() -> TrainConfig:
    agent = AgentConfig(image_size=32, channels=(8, 8), strides=(2, 2), feature_dim=16, hidden_dim=32,
                        embedding_dim=32, augment_pad=2, n_step=2, ensemble_hidden=16, std_decay_updates=200)
    return TrainConfig(preset='debug', steps=240, prefill_steps=60, update_every=2, batch_size=8, eval_every=120,
                       eval_episodes=1, checkpoint_every=60, log_every=20, agent=agent,
                       env=EnvSettings(image_size=32, episode_steps=30, render_scale=1),
                       replay=ReplaySettings(capacity=600, memory_episodes=8),
                       text=TextSettings(encoder='random', max_tokens=16, random_layers=1, random_dim=32,
                                         random_heads=2, random_hidden=64),
                       imitation=ImitationSettings(tasks=('push_button', 'pick_up_cup'), demos_per_task=2,
                                                   fumble_fraction=0.0,      # 12 steps leave no time to recover
                                                   max_episode_steps=20, dagger_rounds=1, dagger_episodes_per_task=1,
                                                   updates=12, dagger_updates=6, batch_size=8, eval_episodes=1,
                                                   checkpoint_every=5, workers=1))


def _cpu() -> TrainConfig:
    agent = AgentConfig(ensemble_hidden=128, std_decay_updates=10_000)
    return TrainConfig(preset='cpu', prefill_steps=2_000, update_every=1, batch_size=64, agent=agent)


def _paper() -> TrainConfig:
    agent = AgentConfig(image_size=128, cameras=('front', 'wrist'), channels=(32, 32, 32, 32), strides=(2, 1, 1, 1),
                        augment_pad=8, hidden_dim=1024, ensemble_hidden=512, std_decay_updates=500_000)
    return TrainConfig(preset='paper', steps=1_002_000, prefill_steps=4_000, batch_size=256, eval_every=10_000,
                       eval_episodes=10, checkpoint_every=20_000, threads=8, agent=agent,
                       env=EnvSettings(image_size=128),
                       replay=ReplaySettings(capacity=1_000_000, memory_episodes=7_000),
                       text=TextSettings(random_layers=6))


PRESETS = {'debug': _debug, 'cpu': _cpu, 'paper': _paper}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f'unknown preset {name!r}; choose one of {sorted(PRESETS)}')
    return PRESETS[name]()


# --- YAML ----------------------------------------------------------------------------------------------------

def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass -> plain dict (tuples as lists), for YAML."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value
    return plain(config)


def from_dict(cls: type, data: Any, where: str = 'config') -> Any:
    """A plain dict -> the dataclass `cls`, checking every key and type (ValueError names the field)."""
    if not isinstance(data, dict):
        raise ValueError(f'{where}: expected a mapping, got {type(data).__name__}')
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f'{where}: unknown keys {unknown} (known: {sorted(known)})')
    values = {name: _coerce(hints[name], value, f'{where}.{name}') for name, value in data.items()}
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f'{where}: expected a list, got {value!r}')
        item = typing.get_args(hint)[0]
        return tuple(_coerce(item, v, f'{where}[{i}]') for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(options[0], value, where)
    return _coerce_scalar(hint, value, where)


def _coerce_scalar(hint: Any, value: Any, where: str) -> Any:
    """int, float, str and bool as YAML gives them: ints and number strings as floats where a float is meant,
    never a bool for an int."""
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):      # YAML 1.1 reads 3e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise ValueError(f'{where}: expected a number, got {value!r}') from None
    is_bool_as_int = hint is int and isinstance(value, bool)
    if hint in (int, float, str, bool) and (not isinstance(value, hint) or is_bool_as_int):
        raise ValueError(f'{where}: expected {hint.__name__}, got {value!r}')
    return value


def dump_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def load_yaml(text: str, where: str = 'config.yaml') -> TrainConfig:
    """A saved config; settings it predates read at their LEGACY_VALUES (what the run was trained with)."""
    data = yaml.safe_load(text)
    if isinstance(data, dict):
        for dotted, value in LEGACY_VALUES.items():
            *parents, key = dotted.split('.')
            node = data
            for parent in parents:
                node = node.get(parent) if isinstance(node, dict) else None
            if isinstance(node, dict) and key not in node:
                node[key] = value
    return from_dict(TrainConfig, data, where)


def config_hash(config: TrainConfig) -> str:
    return hashlib.sha256(dump_yaml(config).encode()).hexdigest()[:16]


def override(config: TrainConfig, assignments: list[str]) -> TrainConfig:
    """Apply 'dotted.key=value' assignments (value parsed as YAML), e.g. 'agent.lr=3e-4', 'env.randomize=false'."""
    data = to_dict(config)
    for assignment in assignments:
        key, sep, text = assignment.partition('=')
        if not sep or not key:
            raise ValueError(f'override {assignment!r}: write key=value, e.g. agent.lr=3e-4')
        node = data
        parts = key.split('.')
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f'override {assignment!r}: {part!r} is not a section of the config')
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f'override {assignment!r}: no setting {key!r}')
        node[parts[-1]] = yaml.safe_load(text)
    return from_dict(TrainConfig, data, 'config (after overrides)')


def differences(a: TrainConfig, b: TrainConfig) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in x:
                walk(x[key], y.get(key), f'{prefix}{key}.')
        elif x != y:
            out.append(f'{prefix[:-1]}: {x!r} -> {y!r}')
    walk(to_dict(a), to_dict(b), '')
    return out


__all__ = ['FINETUNE_REWARDS', 'LEGACY_VALUES', 'AgentConfig', 'EnvSettings', 'FinetuneSettings', 'ImitationSettings', 'PRESETS', 'PretrainRewardSettings', 'ReplaySettings',
           'TextSettings', 'TrainConfig', 'config_hash', 'differences', 'dump_yaml', 'from_dict', 'load_yaml',
           'override', 'preset', 'replace', 'to_dict']
