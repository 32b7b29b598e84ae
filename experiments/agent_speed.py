"""Where a training step's time goes, per preset, and what a DreamerV3-style world model would cost instead.

Prints a table (median and p99 ms, ratio to the env step measured in the same run):
    env step         sim.make(push_button) at the preset's image size, random actions (both cameras rendered)
    act              DrQAgent.act, one observation
    update           DrQAgent.update on a batch from a real replay: finetuning (task reward only) and
                     pretraining (novelty ensemble on: every frame of the n-step window is encoded)
    vlm label        r_VLM of one 150-step episode: R3M ResNet-18 embeds 151 frames once, head per frame
    world model      one DreamerV3-sized update, measured on plain torch modules of that size: a CNN encoder
                     and decoder on batch 16 x length 64 frames, a 512-unit GRU scanned over the 64 steps,
                     and a 15-step imagination rollout from all 1024 states with actor and critic
                     (an estimate of the cost, not a working world model)

    python experiments/agent_speed.py [--presets debug cpu] [--threads 1] [--repeats 20]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sim  # noqa: E402
from training.agent import DrQAgent  # noqa: E402
from training.config import preset, replace  # noqa: E402
from training.replay import EpisodeReplay  # noqa: E402


def timed(fn: Callable[[], object], repeats: int, warmup: int = 2) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return np.array(out) * 1e3


def collect(task: str, image_size: int, steps: int, replay: EpisodeReplay, embedding_dim: int) -> np.ndarray:
    """Random-action episodes into `replay`; returns the per-step env times (ms)."""
    env = sim.make(task, image_size=image_size, max_episode_steps=150)
    rng = np.random.default_rng(0)
    times = []
    while len(times) < steps:
        obs, _ = env.reset(seed=len(times))
        record = {'image_front': [obs['image_front']], 'state': [obs['state']], 'action': [], 'reward': []}
        done = False
        while not done:
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            start = time.perf_counter()
            obs, reward, terminated, truncated, _ = env.step(action)
            times.append(time.perf_counter() - start)
            done = terminated or truncated
            record['image_front'].append(obs['image_front'])
            record['state'].append(obs['state'])
            record['action'].append(action)
            record['reward'].append(reward)
        episode = {k: np.stack(v).astype(np.float32 if k != 'image_front' else np.uint8) for k, v in record.items()}
        episode.update(success=np.zeros(len(record['action']), bool), instruction=np.array('push button'),
                       instruction_embedding=np.zeros(embedding_dim, np.float32),
                       vlm_reward=episode['reward'])
        replay.add(episode, len(times))
    env.close()
    return np.array(times) * 1e3


def world_model_update_ms(image_size: int, repeats: int) -> np.ndarray:
    """DreamerV3 'small'-like sizes: CNN depth 32, GRU 512, 32x16 latents, MLPs 512, batch 16 x 64, horizon 15."""
    batch, length, deter, stoch, hidden, horizon = 16, 64, 512, 32 * 16, 512, 15
    def cnn(in_ch: int) -> nn.Sequential:
        layers, c = [], in_ch
        for out in (32, 64, 128, 256):
            layers += [nn.Conv2d(c, out, 4, 2, 1), nn.SiLU()]
            c = out
        return nn.Sequential(*layers, nn.Flatten())
    encoder = cnn(3)
    feat = 256 * (image_size // 16) ** 2
    decoder = nn.Sequential(nn.Linear(deter + stoch, feat), nn.Unflatten(1, (256, image_size // 16, image_size // 16)),
                            nn.ConvTranspose2d(256, 128, 4, 2, 1), nn.SiLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1),
                            nn.SiLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.SiLU(),
                            nn.ConvTranspose2d(32, 3, 4, 2, 1))
    gru = nn.GRUCell(hidden, deter)
    img_in = nn.Sequential(nn.Linear(stoch + 4, hidden), nn.SiLU())
    post = nn.Sequential(nn.Linear(deter + feat, hidden), nn.SiLU(), nn.Linear(hidden, stoch))
    prior = nn.Sequential(nn.Linear(deter, hidden), nn.SiLU(), nn.Linear(hidden, stoch))
    def mlp(out: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(deter + stoch, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                             nn.Linear(hidden, out))
    actor, critic, reward = mlp(4), mlp(255), mlp(255)
    modules = nn.ModuleList([encoder, decoder, gru, img_in, post, prior, actor, critic, reward])
    optimizer = torch.optim.Adam(modules.parameters(), lr=1e-4)
    images = torch.rand(batch * length, 3, image_size, image_size)
    actions = torch.rand(batch, length, 4)

    def update() -> None:
        embed = encoder(images).view(batch, length, -1)
        h = torch.zeros(batch, deter)
        z = torch.zeros(batch, stoch)
        states = []
        for t in range(length):                                      # the sequential posterior scan
            h = gru(img_in(torch.cat([z, actions[:, t]], 1)), h)
            z = torch.tanh(post(torch.cat([h, embed[:, t]], 1)))
            states.append(torch.cat([h, z], 1))
            prior(h)
        s = torch.stack(states, 1).flatten(0, 1)
        loss = (decoder(s) - images).pow(2).mean() + reward(s).pow(2).mean()
        h, z = s[:, :deter].detach(), s[:, deter:].detach()
        values = []
        for _ in range(horizon):                                     # imagination from every posterior state
            a = torch.tanh(actor(torch.cat([h, z], 1)))
            h = gru(img_in(torch.cat([z, a], 1)), h)
            z = torch.tanh(prior(h))
            values.append(critic(torch.cat([h, z], 1)))
        loss = loss + torch.stack(values).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return timed(update, repeats, warmup=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--presets', nargs='+', default=['debug', 'cpu'])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--no-world-model', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    import tempfile
    for name in args.presets:
        config = preset(name)
        with tempfile.TemporaryDirectory() as tmp:
            replay = EpisodeReplay(Path(tmp), 10_000, 100, ('front',), config.agent.n_step)
            env_ms = collect('push_button', config.env.image_size, 600, replay, config.agent.embedding_dim)
            base = float(np.median(env_ms))
            rows.append((name, 'env step (render 2 cameras + physics)', env_ms, base))
            finetune = DrQAgent(config.agent, seed=0)
            rng = np.random.default_rng(0)
            batch = replay.sample(config.batch_size, rng)
            obs = {'image_front': batch['image_front'][0, 0], 'state': batch['state'][0, 0]}
            rows.append((name, 'act', timed(lambda: finetune.act(obs, batch['instruction'][0], explore=True),
                                            args.repeats * 5), base))
            rows.append((name, f'sample batch {config.batch_size}', timed(lambda: replay.sample(config.batch_size, rng),
                                                                          args.repeats), base))
            rows.append((name, 'update, finetuning', timed(lambda: finetune.update(batch), args.repeats), base))
            pretrain = DrQAgent(replace(config.agent, intr_scale=0.9, extr_scale=0.1), seed=0)
            rows.append((name, 'update, pretraining (novelty)', timed(lambda: pretrain.update(batch), args.repeats),
                         base))
        from models.r3m.model import R3MNet
        from models.r3m.reward import R3MReward
        from models.text_encoder import default_vocab_path
        from training.vlm import VlmRewardLabeler
        reward = R3MReward(R3MNet.random(size=18, hidden_dim=1024), default_vocab_path(), name='r3m-speed')
        labeler = VlmRewardLabeler(reward)
        frames = np.random.default_rng(0).integers(0, 256, (151, config.env.image_size, config.env.image_size, 3),
                                                   dtype=np.uint8)
        count = iter(range(10**6))
        rows.append((name, 'vlm label, one episode (R3M-18)',
                     timed(lambda: labeler.label(f'e{next(count)}', frames, 'pick up the mug'),
                           max(3, args.repeats // 5), warmup=1), base))
        if not args.no_world_model:
            rows.append((name, 'world model update (DreamerV3-S sized)',
                         world_model_update_ms(config.env.image_size, max(2, args.repeats // 10)), base))
    print(f'torch threads {args.threads}; ratio = median / median env step of the same preset\n')
    print('| preset | what | median ms | p99 ms | ratio to env step |\n|---|---|---|---|---|')
    for name, what, ms, base in rows:
        print(f'| {name} | {what} | {np.median(ms):.2f} | {np.percentile(ms, 99):.2f} | {np.median(ms) / base:.1f} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
