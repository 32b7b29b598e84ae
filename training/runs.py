"""Create, resume and load runs: pretraining (LAMP's VLM + novelty reward on lamp/Pretrain-v0) and finetuning
(a downstream task's shaped reward, the task phrase as instruction, optionally from a pretrained run).

A new run is written completely before training starts: config.yaml, seeds.json, a step-0 checkpoint (the
initial or pretrained weights, the fresh critic head of a linear probe), then run.json. From then on every
start of the run, the first included, is a resume from its newest complete checkpoint.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lamp_ros.fileio import atomic_write_text
from training.agent import AgentConfig, DrQAgent
from sim.privileged import PRIVILEGED_DIM
from sim.tasks import DOWNSTREAM_TASKS
from training import text
from training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, load_weights, save_checkpoint
from training.config import TrainConfig, differences, replace
from training.evaluate import evaluate, make_env
from training.loop import Session, initial_trainer_state, run_hash, train
from training.run import (TUNE_SEED_BASE, RunError, RunInfo, RunPaths, check_new_run_dir, now, read_run,
                           write_new_run)
from training.text import InstructionEmbedder, TextEncoderSource
from training.vlm import VlmRewardLabeler

ARCHITECTURE = ('image_size', 'cameras', 'state_dim', 'embedding_dim', 'action_dim', 'channels', 'strides',
                'feature_dim', 'hidden_dim', 'ensemble_size', 'ensemble_hidden')


def resolve_pretrain(config: TrainConfig, text_dim: int) -> TrainConfig:
    """The agent's reward mix and instruction width from the pretraining settings."""
    r = config.reward
    agent = replace(config.agent, embedding_dim=text_dim, extr_scale=r.alpha * r.vlm_scale,
                    intr_scale=(1.0 - r.alpha) * r.novelty_scale)
    return replace(config, agent=agent)


def resolve_finetune(config: TrainConfig, text_dim: int, init_agent: AgentConfig | None,
                     init_mode: str | None = None) -> TrainConfig:
    """Task reward only (LAMP: expl_intr_scale 0, expl_extr_scale 1); the architecture of the pretrained run;
    the agent's side of the finetune.* demonstration settings. A pretrained run keeps its critic (and so its
    critic_layernorm); an imitation run has none worth keeping, so it gets the configured one."""
    fin = config.finetune
    agent = replace(config.agent, embedding_dim=text_dim, extr_scale=1.0, intr_scale=0.0,
                    critic_layernorm=fin.critic_layernorm, critic_heads=fin.critic_heads,
                    bc_weight=fin.bc_weight, bc_decay_updates=fin.bc_decay_steps, bc_q_filter=fin.bc_q_filter,
                    critic_warmup_updates=fin.critic_warmup_updates, gripper_noise=fin.gripper_noise,
                    step_penalty=fin.step_penalty, reference_actor=fin.reference_actor,
                    actor_objective=fin.actor_objective, privileged_dim=PRIVILEGED_DIM if fin.privileged_critic else 0)
    if fin.explore_std > 0:
        agent = replace(agent, std_init=fin.explore_std, std_final=fin.explore_std)
    if init_agent is not None:
        agent = replace(agent, **{name: getattr(init_agent, name) for name in ARCHITECTURE})
        if init_mode != 'imitate':
            agent = replace(agent, critic_layernorm=init_agent.critic_layernorm, critic_heads=init_agent.critic_heads)
    image_size = agent.image_size
    return replace(config, agent=agent, env=replace(config.env, image_size=image_size))


def init_state_bounds(agent: DrQAgent) -> None:
    """Set the state normalisation of a new agent's networks from the simulator's observation space."""
    from sim.config import SceneConfig
    from sim.env import state_bounds
    low, high = state_bounds(SceneConfig())
    for critic_or_actor in (agent.actor, agent.critic, agent.critic_target):
        critic_or_actor.state_norm.set_bounds(low, high)


# --- pretraining -------------------------------------------------------------------------------------------

def pretrain(run_dir: Path, requested: TrainConfig | None, reward_checkpoint: Path | None,
             steps: int | None = None, device: str = 'cpu') -> dict[str, Any]:
    """Create (or resume) a pretraining run and train it. `requested` None: resume with the saved config."""
    from models.r3m.reward import R3MReward
    run_dir = Path(run_dir)
    if (run_dir / 'run.json').is_file():
        paths, config, info = read_run(run_dir)
        _check_mode(info, 'pretrain', run_dir)
        if reward_checkpoint is not None and Path(reward_checkpoint).resolve() != Path(info.reward_checkpoint):
            raise RunError(f'{run_dir} pretrains with the reward checkpoint {info.reward_checkpoint}, not '
                           f'{reward_checkpoint}; choose another --run-dir for another reward model')
        reward = R3MReward.load(info.reward_checkpoint, device=device)
        if reward.name.split('@')[-1] != info.text_encoder.digest:
            raise RunError(f'{info.reward_checkpoint}: model.pt changed since the run was created')
        if requested is not None:
            _check_same(config, resolve_pretrain(requested, reward.lang_dim), run_dir)
    else:
        if reward_checkpoint is None:
            raise RunError('pretraining needs --reward-checkpoint DIR: an R3M checkpoint in the official layout '
                           '(model.pt, config.yaml, vocab.txt), e.g. from `lamp-models fetch r3m` or '
                           '`lamp-models finetune-reward`')
        reward = R3MReward.load(reward_checkpoint, device=device)
        paths = check_new_run_dir(run_dir)
        config = resolve_pretrain(requested or TrainConfig(), reward.lang_dim)
        source = text.r3m_source(reward_checkpoint)
        info = RunInfo('pretrain', 'pretrain', source, reward_checkpoint=source.path, created=now())
        agent = DrQAgent(config.agent, seed=config.seed)
        init_state_bounds(agent)
        save_checkpoint(paths.root, 0, agent, run_hash(config), initial_trainer_state(config))
        write_new_run(paths, config, info)
    embedder = InstructionEmbedder(reward.net.lang_enc, reward.vocab_path, config.text.max_tokens)
    session = Session(paths, config, info, DrQAgent(config.agent, seed=config.seed, device=device), embedder,
                      reward_key='vlm_reward', labeler=VlmRewardLabeler(reward, config.reward.image_size),
                      steps=steps)
    return train(session)


# --- finetuning --------------------------------------------------------------------------------------------

def finetune(run_dir: Path, requested: TrainConfig | None, task: str | None, init_run: Path | None = None,
             init_step: int | None = None, reward_checkpoint: Path | None = None,
             steps: int | None = None, device: str = 'cpu') -> dict[str, Any]:
    """Create (or resume) a finetuning run on a downstream task and train it."""
    run_dir = Path(run_dir)
    if (run_dir / 'run.json').is_file():
        paths, config, info, encoder, vocab = _resumed_finetune(run_dir, requested, task, init_run)
    else:
        if task is None:
            raise RunError('a new finetuning run needs --task')
        if task not in DOWNSTREAM_TASKS:
            raise RunError(f'unknown task {task!r}; choose one of {sorted(DOWNSTREAM_TASKS)}')
        info, config, encoder, vocab = _create_finetune(run_dir, requested or TrainConfig(), task, init_run,
                                                        init_step, reward_checkpoint)
        paths = RunPaths(run_dir)
    fin = config.finetune
    session = Session(paths, config, info, DrQAgent(config.agent, seed=config.seed, device=device),
                      InstructionEmbedder(encoder, vocab, config.text.max_tokens),
                      reward_key='success' if fin.reward == 'success' else 'reward',
                      linear_probe_steps=fin.linear_probe_steps if fin.critic_linear_probe else None, steps=steps)
    return train(session)


def _resumed_finetune(run_dir: Path, requested: TrainConfig | None, task: str | None, init_run: Path | None
                      ) -> tuple[RunPaths, TrainConfig, RunInfo, Any, Path]:
    """An existing finetuning run, refused if the command names another task, start or settings."""
    paths, config, info = read_run(run_dir)
    _check_mode(info, 'finetune', run_dir)
    if task is not None and task != info.task:
        raise RunError(f'{run_dir} finetunes {info.task!r}, not {task!r}')
    if init_run is not None and str(Path(init_run).resolve()) != info.init_run:
        raise RunError(f'{run_dir} was started from {info.init_run}, not {init_run}')
    encoder, vocab = text.load(info.text_encoder)
    if requested is not None:
        init_agent, init_mode = None, None
        if info.init_run:
            _, init_config, init_info = read_run(Path(info.init_run))
            init_agent, init_mode = init_config.agent, init_info.mode
        _check_same(config, resolve_finetune(requested, encoder.dim, init_agent, init_mode), run_dir)
    return paths, config, info, encoder, vocab


def _create_finetune(run_dir: Path, requested: TrainConfig, task: str, init_run: Path | None, init_step: int | None,
                     reward_checkpoint: Path | None) -> tuple[RunInfo, TrainConfig, Any, Path]:
    init_checkpoint, init_agent, init_info, source = _finetune_start(requested, init_run, init_step, reward_checkpoint)
    paths = check_new_run_dir(run_dir)
    if source is None:
        source = text.default_source(paths.root, requested.text, requested.seed)
    encoder, vocab = text.load(source)
    init_mode = init_info.mode if init_info is not None else None
    config = resolve_finetune(requested, encoder.dim, init_agent, init_mode)
    agent = _starting_agent(config, init_checkpoint, init_mode)
    embedder = InstructionEmbedder(encoder, vocab, config.text.max_tokens)
    instruction = DOWNSTREAM_TASKS[task].phrases[0]            # LAMP: the task name with spaces
    if config.finetune.tune_instruction:
        instruction = tune_instruction(paths, config, task, agent, embedder,
                                       Path(init_run) if init_run is not None else None)
    info = RunInfo('finetune', task, source, init_run=str(Path(init_run).resolve()) if init_run else None,
                   init_step=int(init_checkpoint.name.split('_')[1]) if init_checkpoint else None,
                   instruction=instruction, created=now())
    save_checkpoint(paths.root, 0, agent, run_hash(config), initial_trainer_state(config))
    write_new_run(paths, config, info)
    return info, config, encoder, vocab


def _finetune_start(requested: TrainConfig, init_run: Path | None, init_step: int | None,
                    reward_checkpoint: Path | None) -> tuple[Path | None, AgentConfig | None, RunInfo | None, Any]:
    """(checkpoint, agent config, run info, text encoder source) a finetuning run starts from: the --init run's,
    or from scratch the R3M's text encoder (--reward-checkpoint) or none yet (the default, made in the run)."""
    if init_run is not None and reward_checkpoint is not None:
        raise RunError('--reward-checkpoint only chooses the text encoder of a run from scratch; with --init the '
                       'text encoder is the pretrained run\'s')
    if init_run is None:
        return None, None, None, text.r3m_source(reward_checkpoint) if reward_checkpoint is not None else None
    _, init_config, init_info = read_run(Path(init_run))
    if requested.finetune.privileged_critic and init_info.mode != 'imitate':
        raise RunError(f'finetune.privileged_critic needs a fresh critic: {init_run} is a {init_info.mode} run '
                       'whose critic takes no privileged state (start from an imitation run or from scratch)')
    return _checkpoint_at(Path(init_run), init_step), init_config.agent, init_info, init_info.text_encoder


def _starting_agent(config: TrainConfig, init_checkpoint: Path | None, init_mode: str | None) -> DrQAgent:
    """The agent at step 0: the start's weights (an imitation run: encoder and actor only; a reconstruction
    decoder always starts fresh), IBRL's reference set to it, and the critic's output reset for a linear probe."""
    agent = DrQAgent(config.agent, seed=config.seed)
    init_state_bounds(agent)
    if init_checkpoint is not None:
        load_weights(init_checkpoint, agent, ('encoder', 'actor') if init_mode == 'imitate' else
                     tuple(name for name in agent.modules() if name not in ('reference', 'decoder')))
    agent.reset_reference()                                     # IBRL's reference: the policy it starts from
    if config.finetune.critic_linear_probe:
        agent.reset_critic_output(config.seed)
        agent.set_critic_linear_probe(True)
    return agent


def tuning_candidates(task: str, count: int, pretraining_instructions: list[str], seed: int) -> list[str]:
    """LAMP's tune_instruction candidates: the task's phrases, then pretraining instructions to fill `count`."""
    phrases = list(DOWNSTREAM_TASKS[task].phrases)
    others = [i for i in pretraining_instructions if i not in phrases]
    rng = np.random.default_rng(seed)
    extra = max(0, count - len(phrases))
    picked = list(rng.choice(others, size=min(extra, len(others)), replace=False)) if others and extra else []
    return (phrases + [str(p) for p in picked])[:count]


def tune_instruction(paths: RunPaths, config: TrainConfig, task: str, agent: DrQAgent, embedder: InstructionEmbedder,
                     init_run: Path | None) -> str:
    """Play each candidate instruction for `tune_episodes` (deterministic policy, the same scenes for every
    candidate) and keep the one with the highest return, as LAMP's tune_instruction."""
    seen: list[str] = []
    if init_run is not None and (init_run / 'instructions.json').is_file():
        seen = list(json.loads((init_run / 'instructions.json').read_text()))
    fin = config.finetune
    candidates = tuning_candidates(task, fin.num_tune_instructions, seen, config.seed)
    env = make_env(task, config.env)
    seeds = [TUNE_SEED_BASE + k for k in range(fin.tune_episodes)]
    rows = []
    for candidate in candidates:
        result = evaluate(env, agent, embedder, seeds, instruction=candidate)
        rows.append({'instruction': candidate, 'mean_return': result.mean_return, 'success_rate': result.success_rate})
    env.close()
    best = max(rows, key=lambda r: r['mean_return'])
    atomic_write_text(paths.tuning, json.dumps({'chosen': best['instruction'], 'candidates': rows}, indent=1) + '\n')
    print(f'instruction tuning: {len(rows)} candidates, best {best["instruction"]!r} '
          f'(return {best["mean_return"]:.1f}); all in {paths.tuning}')
    return best['instruction']


# --- loading for evaluation and export -------------------------------------------------------------------

def load_agent(run_dir: Path, step: int | None = None,
               device: str = 'cpu') -> tuple[DrQAgent, TrainConfig, RunInfo, int]:
    """The agent of a run at its newest checkpoint (or at `step`), with its config and info."""
    paths, config, info = read_run(Path(run_dir))
    checkpoint = _checkpoint_at(paths.root, step)
    agent = DrQAgent(config.agent, seed=config.seed, device=device)
    if info.mode == 'imitate':
        load_weights(checkpoint, agent)        # weights only: an imitation run's optimizer is not the agent's
    else:
        load_checkpoint(checkpoint, agent, run_hash(config))
    return agent, config, info, int(checkpoint.name.split('_')[1])


def embedder_for(config: TrainConfig, source: TextEncoderSource) -> InstructionEmbedder:
    encoder, vocab = text.load(source)
    return InstructionEmbedder(encoder, vocab, config.text.max_tokens)


def _checkpoint_at(run_dir: Path, step: int | None) -> Path:
    if step is None:
        found = latest_checkpoint(run_dir)
        if found is None:
            raise RunError(f'{run_dir}: no checkpoint')
        return found
    steps = dict(list_checkpoints(run_dir))
    if step not in steps:
        raise RunError(f'{run_dir}: no checkpoint at step {step} (have {sorted(steps)})')
    return steps[step]


def _check_mode(info: RunInfo, mode: str, run_dir: Path) -> None:
    if info.mode != mode:
        raise RunError(f'{run_dir} is a {info.mode} run; use `lamp-train {info.mode}` to continue it')


def _check_same(saved: TrainConfig, requested: TrainConfig, run_dir: Path) -> None:
    diff = [d for d in differences(saved, requested) if not d.startswith('steps:')]
    if diff:
        raise RunError(f'{run_dir} exists with another config ({"; ".join(diff)}); resume it without config '
                       'options (or only --steps), or choose another --run-dir')
