"""lamp-train: LAMP in simulation: pretrain with VLM + novelty reward, finetune on a task, evaluate.

    lamp-train pretrain --run-dir runs/pt --reward-checkpoint R3M_DIR [--preset cpu] [--alpha 0.1]
                        [--actors N [--ray-address ADDR]]   (simulated robots on Ray feed an online learner)
    lamp-train finetune --run-dir runs/ft --task push_button [--init runs/pt] [--tune-instruction]
                        [--critic-linear-probe]
    lamp-train imitate --run-dir runs/il [--set imitation.demos_per_task=150]   (experts -> BC -> DAgger)
    lamp-train eval runs/ft [--episodes 20]
    lamp-export runs/ft --out bundles/push_button                  (the policy bundle for the robot)

A command given an existing --run-dir resumes it from its newest complete checkpoint (after a crash or
kill -9 too). docs/training.md explains the agent, the presets and the run directory.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from training.config import PRESETS, TrainConfig, override, preset, replace

CONFIG_OPTIONS = ('preset', 'seed', 'set', 'alpha', 'vlm_scale', 'novelty_scale', 'standardize_rewards',
                  'tune_instruction', 'num_tune_instructions', 'critic_linear_probe', 'linear_probe_steps')


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def _actors(p: argparse.ArgumentParser) -> None:
    p.add_argument('--actors', type=_positive, default=None, metavar='N',
                   help='N simulated robots on Ray feed the online learner over the robot link (a real arm '
                        'can join it); RUN is then a learner run (docs/scale.md)')
    p.add_argument('--ray-address', default=None, metavar='ADDR',
                   help='with --actors: a Ray cluster (auto, HOST:PORT or ray://HOST:PORT; default: Ray on '
                        'this machine)')


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument('--run-dir', type=Path, required=True,
                   help='run directory: created if absent, resumed from its newest checkpoint if it exists')
    p.add_argument('--preset', choices=sorted(PRESETS), default=None,
                   help='debug (tiny, tests), cpu (small, 64x64, this machine), paper (GPU); default cpu')
    p.add_argument('--steps', type=_positive, default=None, help="env steps in total (default: the preset's); "
                   'a larger value extends a finished run')
    p.add_argument('--seed', type=int, default=None, help='run seed (default 0); seeds.json lists what derives from it')
    p.add_argument('--device', default='cpu', help="torch device of the agent and reward model, e.g. cuda "
                   '(default cpu); not part of the config: a run may continue on another device')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='override any config value, e.g. --set agent.lr=3e-4 --set env.randomize=false '
                        '(see RUN/config.yaml for the keys)')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='lamp-train', description=__doc__.split('\n\n')[0],
                                     epilog='Export a trained run with: lamp-export RUN --out BUNDLE.\n'
                                            'The shipped bundle (bundles/default) from scratch, ~20 min on '
                                            '2 CPU cores:\n'
                                            '  lamp-train imitate --run-dir runs/il\n'
                                            '  lamp-export runs/il --out runs/il_bundle\n'
                                            '  lamp-sim eval-bundle runs/il_bundle --task all --episodes 50\n'
                                            '(python experiments/imitation_recipe.py --ship runs and times all three)',
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    pre = sub.add_parser('pretrain', help='LAMP pretraining on lamp/Pretrain-v0 (r = a*r_VLM + (1-a)*r_novelty)',
                         description='Pretrain the language-conditioned agent on the randomized pretraining scene: '
                                     'a new instruction each episode, reward alpha * r_VLM (R3M score of the '
                                     "episode's frames and instruction) + (1 - alpha) * novelty (disagreement of "
                                     '10 latent predictors).')
    _common(pre)
    pre.add_argument('--reward-checkpoint', type=Path, default=None,
                     help='R3M checkpoint directory (official layout) for r_VLM and the instruction encoder; '
                          'required for a new run')
    pre.add_argument('--alpha', type=float, default=None, help='weight of r_VLM (default 0.1, LAMP)')
    pre.add_argument('--vlm-scale', type=float, default=None, help='scale of r_VLM before mixing (default 1)')
    pre.add_argument('--novelty-scale', type=float, default=None, help='scale of the novelty before mixing (default 1)')
    pre.add_argument('--standardize-rewards', action='store_true', default=None,
                     help='standardize r_VLM per instruction with running statistics (LAMP: standardize_rewards)')
    _actors(pre)
    pre.set_defaults(run=cmd_pretrain)

    fin = sub.add_parser('finetune', help='finetune on a downstream task with its shaped reward',
                         description='Finetune on a downstream task: its shaped reward, its phrase as the '
                                     'instruction; from scratch or from a pretrained run (--init).')
    _common(fin)
    fin.add_argument('--task', default=None, help='downstream task, e.g. push_button (required for a new run)')
    fin.add_argument('--init', type=Path, default=None, help='pretrained run to start from (its newest checkpoint)')
    fin.add_argument('--init-step', type=int, default=None, help='start from this checkpoint step of --init instead')
    fin.add_argument('--reward-checkpoint', type=Path, default=None,
                     help='without --init: take the instruction encoder from this R3M checkpoint (default: a random '
                          'DistilBERT saved with the run)')
    fin.add_argument('--tune-instruction', action='store_true', default=None,
                     help="try candidate instructions (task phrases + the pretrained run's) and keep the best by "
                          'return (LAMP: tune_instruction)')
    fin.add_argument('--num-tune-instructions', type=_positive, default=None, help='candidates (default 10)')
    fin.add_argument('--critic-linear-probe', action='store_true', default=None,
                     help="train a fresh output layer on the frozen critic (LAMP's finetuning setting)")
    fin.add_argument('--linear-probe-steps', type=int, default=None,
                     help='unfreeze the critic after this many env steps (default 0: never, as LAMP)')
    _actors(fin)
    fin.set_defaults(run=cmd_finetune)

    imi = sub.add_parser('imitate', help='multi-task imitation: expert demos, behaviour cloning, DAgger rounds',
                         description='Learn one language-conditioned policy for the downstream tasks from the '
                                     'scripted Markov experts: noisy demos with clean labels, behaviour cloning with '
                                     'an auxiliary focus-point head, then optional DAgger rounds (the student drives, '
                                     'the expert labels; off by default: measured worse, docs/training.md). '
                                     'Settings: the imitation.* keys of RUN/config.yaml (--set).')
    _common(imi)
    imi.add_argument('--ray-address', default=None, metavar='ADDR',
                     help='make the expert demos and DAgger episodes as Ray tasks: local (Ray on this machine), '
                          'auto, HOST:PORT or ray://HOST:PORT (the same episodes as without)')
    imi.set_defaults(run=cmd_imitate)

    ev = sub.add_parser('eval', help="success rate of a run's policy over N episodes, and a video",
                        description="Evaluate a run's deterministic policy on its task (the evaluation scenes "
                                    'of training, then new ones if more episodes are asked).')
    ev.add_argument('run_dir', type=Path, metavar='RUN', help='run directory')
    ev.add_argument('--episodes', type=_positive, default=20, help='episodes (default 20)')
    ev.add_argument('--step', type=int, default=None, help='checkpoint step (default: the newest)')
    ev.add_argument('--instruction', default=None, help="override the run's instruction")
    ev.add_argument('--video', type=Path, default=None, help='mp4 of the first episode (default RUN/videos/...)')
    ev.add_argument('--device', default='cpu', help='torch device (default cpu)')
    ev.set_defaults(run=cmd_eval)
    return parser


def requested_config(args: argparse.Namespace) -> TrainConfig | None:
    """The config asked for on the command line, or None when no config option was given (resume as saved)."""
    if not any(getattr(args, name, None) not in (None, []) for name in CONFIG_OPTIONS):
        return None
    config = preset(args.preset or 'cpu')
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    reward, fin = config.reward, config.finetune
    for name in ('alpha', 'vlm_scale', 'novelty_scale', 'standardize_rewards'):
        if getattr(args, name, None) is not None:
            reward = replace(reward, **{name: getattr(args, name)})
    for name in ('tune_instruction', 'num_tune_instructions', 'critic_linear_probe', 'linear_probe_steps'):
        if getattr(args, name, None) is not None:
            fin = replace(fin, **{name: getattr(args, name)})
    return override(replace(config, reward=reward, finetune=fin), args.set)


def cmd_pretrain(args: argparse.Namespace) -> int:
    if args.actors is not None:
        return pretrain_with_actors(args)
    if args.ray_address is not None:
        raise ValueError('--ray-address needs --actors N')
    from training.runs import pretrain
    pretrain(args.run_dir, requested_config(args), args.reward_checkpoint, steps=args.steps, device=args.device)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    if args.actors is not None:
        return finetune_with_actors(args)
    if args.ray_address is not None:
        raise ValueError('--ray-address needs --actors N')
    from training.runs import finetune
    finetune(args.run_dir, requested_config(args), args.task, init_run=args.init, init_step=args.init_step,
             reward_checkpoint=args.reward_checkpoint, steps=args.steps, device=args.device)
    return 0


def finetune_with_actors(args: argparse.Namespace) -> int:
    """The online learner fed by simulated robots on Ray (lamp_ros/learner/sim_fleet.py)."""
    from lamp_ros.learner.sim_fleet import FleetRequest, run_fleet
    unsupported = [f'--{n.replace("_", "-")}' for n in ('tune_instruction', 'critic_linear_probe', 'init_step',
                                                        'reward_checkpoint') if getattr(args, n) not in (None, False)]
    if unsupported or args.task is None:
        raise ValueError(f'with --actors: --task is required and {", ".join(unsupported) or "these"} are not '
                         'supported (use lamp-train finetune without --actors)')
    settings = tuple(args.set) + ((f'seed={args.seed}',) if args.seed is not None else ())
    record = run_fleet(FleetRequest(args.run_dir, args.task, args.actors, args.steps or 20_000, args.init,
                                    args.preset or 'cpu', settings, args.ray_address, args.device))
    print(f"{args.task}: {record['env_steps']} env steps by {args.actors} simulated robots "
          f"({record['env_steps_per_s']:.1f}/s), {record['updates']} learner updates; {args.run_dir}/fleet.json")
    return 0


def pretrain_with_actors(args: argparse.Namespace) -> int:
    """LAMP pretraining by the online learner fed by simulated robots on Ray; r_VLM scored on the robots."""
    from lamp_ros.learner.sim_fleet import FleetRequest, run_fleet
    checkpoint = args.reward_checkpoint
    info = args.run_dir / 'learner.json'
    if checkpoint is None and info.is_file():
        recorded = json.loads(info.read_text()).get('reward_checkpoint')
        checkpoint = Path(recorded) if recorded else None
    if checkpoint is None:
        raise ValueError('pretraining needs --reward-checkpoint DIR (an R3M checkpoint, official layout)')
    reward = {name: getattr(args, name) for name in ('alpha', 'vlm_scale', 'novelty_scale', 'standardize_rewards')
              if getattr(args, name) is not None}
    settings = (tuple(args.set) + tuple(f'reward.{k}={v}' for k, v in reward.items())
                + ((f'seed={args.seed}',) if args.seed is not None else ()))
    steps = args.steps or preset(args.preset or 'cpu').steps
    record = run_fleet(FleetRequest(args.run_dir, 'pretrain', args.actors, steps, None,
                                    args.preset or 'cpu', settings, args.ray_address, args.device,
                                    reward_checkpoint=checkpoint))
    print(f"pretrain: {record['env_steps']} env steps by {args.actors} simulated robots "
          f"({record['env_steps_per_s']:.1f}/s), {record['updates']} learner updates; {args.run_dir}/fleet.json")
    return 0


def cmd_imitate(args: argparse.Namespace) -> int:
    from training.imitation import imitate
    if args.device != 'cpu' or args.steps is not None:
        raise ValueError('imitate runs on the CPU and counts updates, not env steps: set imitation.updates')
    if args.ray_address is not None:
        from lamp_ros.scale.cluster import connect
        connect(args.ray_address)
    imitate(args.run_dir, imitation_request(args), on_ray=args.ray_address is not None)
    return 0


def imitation_request(args: argparse.Namespace) -> TrainConfig | None:
    """The requested config; on an existing run, `--set` alone applies to its saved config (not the preset's),
    so `--set imitation.dagger_rounds=N` extends the run whatever settings it was made with."""
    from training.run import read_run
    requested = requested_config(args)
    if requested is None or args.preset is not None or args.seed is not None:
        return requested
    if not (Path(args.run_dir) / 'run.json').is_file():
        return requested
    _, saved, _ = read_run(Path(args.run_dir))
    return override(saved, args.set)


def cmd_eval(args: argparse.Namespace) -> int:
    from lamp_ros.fileio import atomic_write_text
    from training.evaluate import evaluate, make_env
    from training.run import EVAL_SEED_BASE, RunPaths
    from lamp_ros.video import write_video
    from training.runs import embedder_for, load_agent

    agent, config, info, step = load_agent(args.run_dir, args.step, device=args.device)
    env = make_env(info.task, config.env)
    result = evaluate(env, agent, embedder_for(config, info.text_encoder),
                      [EVAL_SEED_BASE + k for k in range(args.episodes)], args.instruction or info.instruction,
                      record_first=True)
    env.close()
    paths = RunPaths(args.run_dir)
    video = args.video or paths.videos / f'cli_eval_step_{step:09d}.mp4'
    write_video(video, result.frames, fps=10.0)
    report = paths.root / f'eval_step_{step:09d}.json'
    atomic_write_text(report, json.dumps({'step': step, **result.summary(), 'returns': result.returns,
                                          'successes': result.successes,
                                          'instructions': sorted(set(result.instructions))}, indent=1) + '\n')
    print(f'{info.task} at step {step}: success rate {result.success_rate:.2f} '
          f'({sum(result.successes)}/{len(result.successes)}), mean return {result.mean_return:.1f}')
    print(f'  video   {video}')
    print(f'  report  {report}')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lamp_ros.learner.learner import LearnerError
    from lamp_ros.scale.cluster import ClusterUnreachable
    from models.reward_model import WeightsMissing
    from training.run import RunError
    try:
        return args.run(args)
    except WeightsMissing as e:
        print(str(e), file=sys.stderr)
        return 2
    except (RunError, ValueError, LearnerError, ClusterUnreachable) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    raise SystemExit(main())
