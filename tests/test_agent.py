"""The agent (training/agent): act/update interface, novelty ensemble, reward mixing, linear probe, export form.
Real networks at tiny sizes; batches are random arrays of the real shapes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from training.agent import AgentConfig, DrQAgent
from models.augment import random_shift
from training.agent.novelty import DisagreementEnsemble


pytestmark = pytest.mark.usefixtures('one_torch_thread')


TINY = AgentConfig(image_size=32, channels=(8, 8), strides=(2, 2), feature_dim=16, hidden_dim=32, embedding_dim=24,
                   augment_pad=2, n_step=2, ensemble_hidden=32, std_decay_updates=10)


def random_batch(config: AgentConfig, batch: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = config.n_step
    out = {f'image_{c}': rng.integers(0, 256, (batch, n + 1, config.image_size, config.image_size, 3), dtype=np.uint8)
           for c in config.cameras}
    out.update(state=rng.normal(size=(batch, n + 1, config.state_dim)).astype(np.float32),
               action=rng.uniform(-1, 1, (batch, n, config.action_dim)).astype(np.float32),
               reward=rng.normal(size=(batch, n)).astype(np.float32),
               instruction=rng.normal(size=(batch, config.embedding_dim)).astype(np.float32))
    return out


def observation(config: AgentConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = {f'image_{c}': rng.integers(0, 256, (config.image_size, config.image_size, 3), dtype=np.uint8)
           for c in ('front', 'wrist')}
    obs['state'] = rng.normal(size=config.state_dim).astype(np.float32)
    return obs


def test_act_and_update() -> None:
    agent = DrQAgent(TINY, seed=0)
    instruction = np.ones(TINY.embedding_dim, np.float32)
    action, state = agent.act(observation(TINY), instruction, explore=False)
    assert action.shape == (4,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1) and state is None
    again, _ = agent.act(observation(TINY), instruction, explore=False)
    np.testing.assert_array_equal(action, again)                       # evaluation is deterministic
    noisy, _ = agent.act(observation(TINY), instruction, explore=True)
    assert not np.allclose(noisy, action) and np.all(np.abs(noisy) <= 1)
    metrics = agent.update(random_batch(TINY))
    assert {'critic_loss', 'actor_loss', 'q', 'target_q', 'reward', 'std'} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values()) and agent.updates == 1
    with pytest.raises(ValueError, match='windows of 4 frames; n_step 2 needs 3'):
        agent.update(random_batch(AgentConfig(**{**TINY.__dict__, 'n_step': 3})))


def test_instruction_changes_the_action() -> None:
    agent = DrQAgent(TINY, seed=0)
    obs = observation(TINY)
    a, _ = agent.act(obs, np.zeros(TINY.embedding_dim, np.float32) + np.arange(TINY.embedding_dim, dtype=np.float32))
    b, _ = agent.act(obs, np.zeros(TINY.embedding_dim, np.float32) - np.arange(TINY.embedding_dim, dtype=np.float32))
    assert not np.allclose(a, b)


def test_updates_learn_a_fixed_batch() -> None:
    """Critic loss on one repeated batch falls: gradients reach encoder and critic."""
    torch.manual_seed(0)
    agent = DrQAgent(AgentConfig(**{**TINY.__dict__, 'augment_pad': 0, 'lr': 1e-3}), seed=0)
    batch = random_batch(agent.config, batch=16)
    first = agent.update(batch)['critic_loss']
    for _ in range(150):
        last = agent.update(batch)['critic_loss']
    assert last < 0.5 * first


def test_novelty_is_higher_on_unseen_transitions() -> None:
    torch.manual_seed(0)
    ensemble = DisagreementEnsemble(in_dim=8, out_dim=6, hidden=64, heads=10)
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=3e-3)
    seen = torch.rand(64, 8) * 0.5                                    # a small region of the input space
    targets = torch.sin(seen @ torch.randn(8, 6))
    before = ensemble.disagreement(seen).mean()
    for _ in range(400):
        optimizer.zero_grad()
        ensemble.loss(seen, targets).backward()
        optimizer.step()
    unseen = 2.0 + torch.rand(64, 8) * 0.5                            # far from anything trained on
    on_seen, on_unseen = ensemble.disagreement(seen).mean(), ensemble.disagreement(unseen).mean()
    assert on_seen < 0.5 * before
    assert on_unseen > 5 * on_seen


def test_reward_mixing_and_intrinsic_reward_decay() -> None:
    """reward = extr_scale * extrinsic + intr_scale * disagreement; a repeated batch becomes less novel."""
    torch.manual_seed(0)
    # n_step 1: the heads learn each window's first transition (in replay, the others are other windows' first)
    config = AgentConfig(**{**TINY.__dict__, 'augment_pad': 0, 'n_step': 1, 'ensemble_lr': 3e-3,
                            'extr_scale': 0.1, 'intr_scale': 0.9})
    agent = DrQAgent(config, seed=0)
    batch = random_batch(config, batch=16)
    first = agent.update(batch)
    assert first['reward'] == pytest.approx(0.1 * first['extrinsic_reward'] + 0.9 * first['intrinsic_reward'],
                                            rel=1e-4, abs=1e-6)
    for _ in range(150):
        last = agent.update(batch)
    assert last['intrinsic_reward'] < 0.5 * first['intrinsic_reward']

    task_only = DrQAgent(AgentConfig(**{**TINY.__dict__, 'extr_scale': 1.0, 'intr_scale': 0.0}), seed=0)
    heads = [p.clone() for p in task_only.ensemble.parameters()]
    metrics = task_only.update(random_batch(task_only.config, batch=16))
    assert metrics['reward'] == pytest.approx(metrics['extrinsic_reward'], rel=1e-5)
    assert 'intrinsic_reward' not in metrics                          # no novelty term: the ensemble is left alone
    assert all(torch.equal(a, b) for a, b in zip(heads, task_only.ensemble.parameters()))


def test_critic_linear_probe_trains_only_the_output_layers() -> None:
    agent = DrQAgent(TINY, seed=0)
    agent.reset_critic_output(seed=1)
    for layer, target in zip(agent.critic.output_layers(), agent.critic_target.output_layers()):
        assert torch.equal(layer.weight, target.weight)
    agent.set_critic_linear_probe(True)
    before = {name: p.clone() for name, p in agent.critic.named_parameters()}
    encoder_before = [p.clone() for p in agent.encoder.parameters()]
    for seed in range(3):
        agent.update(random_batch(TINY, seed=seed))
    changed = {name for name, p in agent.critic.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {'q1.4.weight', 'q1.4.bias', 'q2.4.weight', 'q2.4.bias'}
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, agent.encoder.parameters()))
    agent.set_critic_linear_probe(False)
    agent.update(random_batch(TINY, seed=4))
    assert not torch.equal(agent.critic.trunk[0].weight, before['trunk.0.weight'])


def test_exportable_policy_is_the_deterministic_policy() -> None:
    agent = DrQAgent(TINY, seed=0)
    agent.update(random_batch(TINY))
    policy = agent.exportable_policy()
    assert policy.config.image_size == 32 and policy.config.embedding_dim == 24 and not policy.recurrent
    obs, instruction = observation(TINY, seed=3), np.linspace(-1, 1, TINY.embedding_dim).astype(np.float32)
    with torch.no_grad():
        exported = policy(torch.from_numpy(obs['image_front'])[None], torch.from_numpy(obs['state'])[None],
                          torch.from_numpy(instruction)[None])[0].numpy()
    np.testing.assert_allclose(exported, agent.act(obs, instruction)[0], atol=1e-6)
    agent.update(random_batch(TINY, seed=1))                          # the export is a copy, not a view
    with torch.no_grad():
        assert torch.equal(policy(torch.from_numpy(obs['image_front'])[None], torch.from_numpy(obs['state'])[None],
                                  torch.from_numpy(instruction)[None])[0], torch.from_numpy(exported))


def test_a_wrist_camera_agent_trains_and_its_policy_takes_the_wrist_image_after_the_instruction() -> None:
    config = AgentConfig(**{**TINY.__dict__, 'cameras': ('front', 'wrist')})
    agent = DrQAgent(config, seed=0)
    agent.update(random_batch(config))
    obs, instruction = observation(config), np.zeros(24, np.float32)
    policy = agent.exportable_policy()
    with torch.no_grad():
        action = policy(*(torch.from_numpy(x)[None] for x in (obs['image_front'], obs['state'], instruction,
                                                               obs['image_wrist'])))[0].numpy()
    np.testing.assert_allclose(action, agent.act(obs, instruction)[0], atol=1e-6)
    with pytest.raises(ValueError, match='takes images from'):
        policy(*(torch.from_numpy(x)[None] for x in (obs['image_front'], obs['state'], instruction)))


def test_cameras_must_start_with_the_front_one() -> None:
    with pytest.raises(ValueError, match="must start with 'front'"):
        AgentConfig(**{**TINY.__dict__, 'cameras': ('wrist', 'front')})


def test_random_shift_moves_content_with_edge_padding() -> None:
    image = np.arange(5 * 5 * 1, dtype=np.uint8).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(random_shift(image, 2, np.array([[2, 2]])), image)     # centre offset: identity
    shifted = random_shift(image, 2, np.array([[0, 4]]))                                # 2 up, 2 right
    np.testing.assert_array_equal(shifted[0, 2:, :3, 0], image[0, :3, 2:, 0])
    np.testing.assert_array_equal(shifted[0, 0, :3, 0], image[0, 0, 2:, 0])             # replicated top row


def test_reconstruction_shapes_the_encoder_and_nothing_else() -> None:
    """recon_weight: a decoder learns frame t from the encoder's features, and its loss reaches the encoder alone
    (from the same start, one update leaves the critic and actor as without it). Off, there is no decoder."""
    config = AgentConfig(**{**TINY.__dict__, 'augment_pad': 0, 'lr': 1e-3})
    plain, recon = DrQAgent(config, seed=0), DrQAgent(dataclasses.replace(config, recon_weight=1.0), seed=0)
    assert 'decoder' not in plain.modules() and 'decoder' in recon.modules()
    batch = random_batch(config, batch=16)
    for agent in (plain, recon):
        torch.manual_seed(0)
        metrics = agent.update(batch)
    assert 'recon_loss' in metrics

    def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert same(plain.critic, recon.critic) and same(plain.actor, recon.actor)
    assert not same(plain.encoder, recon.encoder)
    losses = [recon.update(batch)['recon_loss'] for _ in range(100)]
    assert losses[-1] < 0.5 * losses[0], losses[::20]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match='cameras'):
        AgentConfig(cameras=('side',))
    with pytest.raises(ValueError, match='too small'):
        AgentConfig(image_size=8)
    with pytest.raises(ValueError, match='at least 2 heads'):
        AgentConfig(ensemble_size=1)
    with pytest.raises(ValueError, match='recon_weight must be >= 0'):
        AgentConfig(recon_weight=-1.0)
    assert AgentConfig().std(0) == 1.0 and AgentConfig().std(10**9) == pytest.approx(0.1)


def test_keypoints_are_the_expected_positions_of_each_channel() -> None:
    from training.agent.networks import spatial_softmax
    maps = torch.zeros(1, 2, 3, 5)
    maps[0, 0, 2, 4] = 60.0                      # bottom right
    maps[0, 1, 0, 0] = 60.0                      # top left
    np.testing.assert_allclose(spatial_softmax(maps)[0].numpy(), [1, 1, -1, -1], atol=1e-4)
    config = AgentConfig(**{**TINY.__dict__, 'keypoints': True})
    agent = DrQAgent(config, seed=0)
    assert agent.encoder.output_dim == DrQAgent(TINY, seed=0).encoder.output_dim + 2 * TINY.channels[-1]
    agent.update(random_batch(config))
    assert agent.act(observation(config), np.zeros(TINY.embedding_dim, np.float32))[0].shape == (4,)


def test_finetuning_pieces_ibrl_reference_bc_term_and_terminal_windows() -> None:
    """The reference (IBRL) starts as the policy and stays frozen; exploring, the agent takes whichever of its
    own and the reference's action the critic values higher; the BC term pulls the actor to demo actions; a
    terminal window's target is its reward alone."""
    config = AgentConfig(image_size=32, channels=(8, 8), strides=(2, 2), feature_dim=16, hidden_dim=32,
                         embedding_dim=16, n_step=2, critic_layernorm=True, bc_weight=1.0, reference_actor=True,
                         std_init=0.0, std_final=0.0)
    agent = DrQAgent(config, seed=0)
    with torch.no_grad():
        agent.reference.actor.policy[-1].bias.fill_(5.0)          # the reference always proposes ~(1, 1, 1, 1)
    obs, embedding = observation(config), np.zeros(config.embedding_dim, np.float32)
    likes_ones = lambda f, s, i, a: (-(a - 1).abs().sum(1), -(a - 1).abs().sum(1))   # noqa: E731
    agent.critic = likes_ones
    assert np.allclose(agent.act(obs, embedding, explore=True)[0], 1.0, atol=1e-3)
    assert not np.allclose(agent.act(obs, embedding, explore=False)[0], 1.0, atol=1e-3), 'deterministic: actor'
    agent.critic = lambda f, s, i, a, p=None: (-(a + 1).abs().sum(1),) * 2                     # now the actor's is better
    assert not np.allclose(agent.act(obs, embedding, explore=True)[0], 1.0, atol=1e-3)

    agent = DrQAgent(config, seed=0)
    agent.reset_reference()
    batch = random_batch(config)
    batch['demo'] = np.ones(len(batch['state']), bool)
    batch['terminal'] = np.ones(len(batch['state']), bool)
    before = {k: v.clone() for k, v in agent.reference.state_dict().items()}
    metrics = [agent.update(batch) for _ in range(3)][-1]
    assert metrics['bc_weight'] == 1.0 and metrics['bc_loss'] > 0
    assert all(torch.equal(before[k], v) for k, v in agent.reference.state_dict().items()), 'the reference is frozen'
    returns = (batch['reward'] * config.gamma ** np.arange(config.n_step)).sum(1)
    assert metrics['target_q'] == pytest.approx(returns.mean(), rel=1e-5)       # terminal: nothing bootstrapped


def test_crr_objective_regresses_only_onto_actions_the_critic_prefers() -> None:
    config = AgentConfig(image_size=32, channels=(8, 8), strides=(2, 2), feature_dim=16, hidden_dim=32,
                         embedding_dim=16, n_step=2, actor_objective='crr', bc_weight=0.0)
    agent = DrQAgent(config, seed=0)
    batch = random_batch(config)
    taken = torch.from_numpy(batch['action'][:, 0])
    for prefers_taken, kept in ((True, 1.0), (False, 0.0)):
        sign = 1.0 if prefers_taken else -1.0
        agent.critic = lambda f, s, i, a, p=None, sign=sign: (sign * -(a - taken).abs().sum(1),) * 2
        metrics: dict[str, float] = {}
        loss = agent._crr_loss(agent.encoder(torch.from_numpy(batch['image_front'][:, 0]).permute(0, 3, 1, 2).float()),
                               torch.from_numpy(batch['state']), torch.from_numpy(batch['instruction']),
                               torch.from_numpy(batch['action']), None, 0.0, metrics)
        assert metrics['crr_kept'] == kept and (loss.item() > 0) == prefers_taken
    with pytest.raises(ValueError, match="actor_objective 'pg'"):
        AgentConfig(actor_objective='pg')


def test_the_q_filter_clones_only_demo_actions_the_critic_prefers_to_the_actors_own() -> None:
    config = AgentConfig(image_size=32, channels=(8, 8), strides=(2, 2), feature_dim=16, hidden_dim=32,
                         embedding_dim=16, n_step=2, bc_weight=1.0, bc_q_filter=True)
    agent = DrQAgent(config, seed=0)
    batch = random_batch(config)
    demo = torch.zeros(len(batch['state']), dtype=torch.bool)
    demo[::2] = True
    taken = torch.from_numpy(batch['action'][:, 0])[demo]
    features = agent.encoder(torch.from_numpy(batch['image_front'][:, 0]).permute(0, 3, 1, 2).float())
    args = (features, torch.from_numpy(batch['state']), torch.from_numpy(batch['instruction']),
            torch.from_numpy(batch['action']), demo)
    for prefers_demo, kept in ((True, 1.0), (False, 0.0)):
        sign = 1.0 if prefers_demo else -1.0
        agent.critic = lambda f, s, i, a, p=None, sign=sign: (sign * -(a - taken).abs().sum(1),) * 2
        metrics: dict[str, float] = {}
        loss = agent._q_filtered_bc_loss(*args, metrics)
        assert metrics['bc_kept'] == kept and (loss.item() > 0) == prefers_demo
    assert agent._q_filtered_bc_loss(*args, {}).item() == 0.0            # nothing kept: no pull at all
    agent.critic = lambda f, s, i, a, p=None: (-(a - taken).abs().sum(1),) * 2
    assert agent._q_filtered_bc_loss(*args, {}).item() == pytest.approx(agent._bc_loss(*args).item(), rel=1e-5)
