"""A simulated robot as a learner's peer: a randomized sim env stepped with the newest policy bundle the learner
pushed (onnxruntime, no torch), its transitions sent over the same link a real arm's actor node uses (same
hello, chunk format, outbox on disk, acknowledgements, dedup). A real arm and any number of these can feed one
learner; to the learner a simulated robot is just another robot id.

Why ROS-free: a simulated robot on a cluster node needs no ROS graph; it produces what the actor node would
(the image the policy saw, the 8 contract state fields, the applied action, the next frame's reward, the
episode's success on its last chunk) and nothing else. Exploration is the finetune graph's (ActionNoise).

Pretraining (`vlm_reward` set): the robot steps the pretraining scene, a new instruction each episode, and rewards
each step with LAMP's r_VLM = R3M(o_0, o_t+1, instruction) from the R3M ONNX export, as the reward node does on a
real arm: the VLM's cost is spread over the robots, and the learner adds novelty and standardization.
"""
from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import sim
from sim.evaluation import state_index
from lamp_ros.contract import FINETUNE_EXPLORE_STD, STATE_KEYS
from lamp_ros.core.embedding_cache import EmbeddingCache
from lamp_ros.core.exploration import ActionNoise
from lamp_ros.core.transitions import FRONT, TransitionAssembler
from lamp_ros.fileio import atomic_write_text
from lamp_ros.link.robot_client import ClientConfig, LinkClient
from models.reward_model import frames_at_size

log = logging.getLogger(__name__)
TRAIN_SCENE_BASE = 1_500_000_000          # training scenes (as lamp-train's scene_seed_base), apart from held-out
ROBOT_SCENES = 1_000_003                  # scene seeds per robot index ...
SCENES_PER_LIFE = 20_000                  # ... and per start of it (Ray restarts a robot that died)


@dataclass(frozen=True)
class SimRobotConfig:
    endpoint: str                          # the learner
    robot_id: str
    task: str
    work_dir: Path                         # outbox/ and bundles/ (kept across restarts: the backlog survives)
    index: int = 0                         # which robot of the fleet: its scene seeds
    cameras: tuple[str, ...] = (FRONT,)    # what the learner's agent sees, front first
    image_size: tuple[int, int] = (64, 64)
    episode_steps: int = 50
    reward_source: str = 'success'         # 'success': the learner rewards the episode's success; 'task': sim's;
                                           # 'r3m': r_VLM of vlm_reward (pretraining)
    vlm_reward: Path | None = None         # R3M ONNX export directory (models/r3m/runtime.py) for 'r3m'
    vlm_image_size: int = 0                # frames resized to this for R3M (0: as rendered; training's reward.image_size)
    explore_std: float = FINETUNE_EXPLORE_STD
    explore_gripper: float = 0.0           # the gripper's share of the noise (pretraining explores it too: 1)
    chunk_steps: int = 10
    bundle_wait_s: float = 120.0           # the first bundle (the learner pushes one on hello)


@dataclass
class RobotStats:
    episodes: int = 0
    successes: int = 0
    steps: int = 0
    bundle: str = ''
    bundles_loaded: int = 0
    step_seconds: list[float] = field(default_factory=list)   # env + policy time per episode step, newest 100

    def as_dict(self) -> dict[str, Any]:
        mean = float(np.mean(self.step_seconds)) if self.step_seconds else float('nan')
        return {'episodes': self.episodes, 'successes': self.successes, 'steps': self.steps, 'bundle': self.bundle,
                'bundles_loaded': self.bundles_loaded, 'seconds_per_step': mean}


class SimRobot:
    def __init__(self, config: SimRobotConfig) -> None:
        self.config = config
        self.stats = RobotStats()
        self._bundles: queue.Queue[tuple[str, Path]] = queue.Queue()
        self.runtime: Any = None
        self._embed: EmbeddingCache | None = None           # the runtime's, made with it
        self._stamp = time.time()
        self.vlm = VlmProgress(config.vlm_reward, config.vlm_image_size) if config.reward_source == 'r3m' else None
        self.ends_at_success = config.reward_source == 'success'   # as lamp-train: other rewards run the episode out
        self.env = sim.make(config.task, image_size=config.image_size, randomize=True, cameras=config.cameras,
                            max_episode_steps=config.episode_steps, terminate_on_success=self.ends_at_success)
        self.noise = ActionNoise(config.explore_std, config.explore_gripper, seed=config.index)
        self.assembler = TransitionAssembler(config.robot_id, config.chunk_steps,
                                             rewards_from_success=config.reward_source == 'success')
        work = Path(config.work_dir)
        self.life = _next_life(work)                   # a restarted robot draws other scenes than before
        self.link = LinkClient(ClientConfig(endpoint=config.endpoint, robot_id=config.robot_id,
                                            outbox_dir=work / 'outbox', bundle_dir=work / 'bundles',
                                            reward_source=config.reward_source, cameras=config.cameras,
                                            sim_version=sim.SIM_VERSION),
                               on_bundle=lambda version, path: self._bundles.put((version, path)))
        kept = _newest_kept_bundle(work / 'bundles')     # a restarted robot acts with what it had: the learner
        if kept is not None:                           # pushes it a bundle only when it has a newer one
            self._bundles.put(kept)

    # --- policy --------------------------------------------------------------------------------------
    def _newest_bundle(self, wait_s: float) -> None:
        """Swap in the newest bundle received (between episodes, as the policy node does); wait for a first."""
        from models.runtime import PolicyRuntime                 # onnxruntime, in the robot's process only
        newest = None
        try:
            newest = self._bundles.get(timeout=wait_s) if self.runtime is None else None
        except queue.Empty:
            raise TimeoutError(f'{self.config.robot_id}: no policy bundle from the learner at {self.config.endpoint} '
                               f'within {wait_s:g} s (is it running, and does it accept this robot?)') from None
        while not self._bundles.empty():
            newest = self._bundles.get_nowait()
        if newest is None:
            return
        version, path = newest
        runtime = PolicyRuntime.load(path, threads=1)
        if tuple(runtime.manifest.cameras) != self.config.cameras:
            raise ValueError(f'{self.config.robot_id}: bundle {version} sees cameras {list(runtime.manifest.cameras)}, '
                             f'this robot sends {list(self.config.cameras)}')
        self.runtime = runtime
        self._embed = EmbeddingCache(runtime.embed_instruction)
        self.stats.bundle, self.stats.bundles_loaded = version, self.stats.bundles_loaded + 1

    # --- episodes ------------------------------------------------------------------------------------
    def run_episode(self, explore_std: float | None = None) -> dict[str, Any]:
        """One episode, its chunks handed to the link (on disk before this returns); the episode's summary.
        `explore_std`: this episode's noise (the learner's schedule), else the config's."""
        self._newest_bundle(self.config.bundle_wait_s)
        if explore_std is not None:
            self.noise.set_std(explore_std)
        seed = TRAIN_SCENE_BASE + self.config.index * ROBOT_SCENES + self.life * SCENES_PER_LIFE + self.stats.episodes
        obs, info = self.env.reset(seed=seed)
        instruction = info['instruction']
        embedding = self._embed(instruction)
        index = state_index(self.runtime.manifest)           # the bundle's state fields in the sim's state
        self.runtime.reset()
        self.assembler.start(instruction)
        if self.vlm is not None:
            self.vlm.start(obs[f'image_{FRONT}'], instruction)
        success, done, steps = False, False, 0
        while not done:
            start = time.perf_counter()
            stamp = self._next_stamp()
            images = {cam: obs[f'image_{cam}'] for cam in self.config.cameras}
            state = self._contract_state(obs)
            action = self.noise(self.runtime.act(images[FRONT], obs['state'][index], embedding,
                                                 {cam: images[cam] for cam in self.config.cameras[1:]}))
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.assembler.on_step(stamp, images[FRONT], stamp, state, info['applied_action'], False,
                                   {cam: images[cam] for cam in self.config.cameras[1:]})
            if self.vlm is not None:
                reward = self.vlm(obs[f'image_{FRONT}'])
            self.assembler.on_reward(self._stamp + 0.1, float(reward))        # the next frame's reward
            self._send(self.assembler.ready_chunks(stamp))
            self.stats.step_seconds = (self.stats.step_seconds + [time.perf_counter() - start])[-100:]
            steps, success = steps + 1, bool(info['episode_success'])
            done = terminated or truncated
        final_stamp = self._stamp + 0.1
        self._send(self.assembler.stop(final_stamp, obs[f'image_{FRONT}'], final_stamp, self._contract_state(obs),
                                       success, '', {cam: obs[f'image_{cam}'] for cam in self.config.cameras[1:]}))
        self.stats.episodes, self.stats.steps = self.stats.episodes + 1, self.stats.steps + steps
        self.stats.successes += int(success)
        return {'seed': seed, 'instruction': instruction, 'steps': steps, 'success': success,
                'bundle': self.stats.bundle}

    def _next_stamp(self) -> float:
        self._stamp += 0.1
        return self._stamp

    def _contract_state(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The 8 fields the actor node records (contract.STATE_KEYS), from the sim's state and the arm's pose."""
        position, opening = obs['state'][:3], obs['state'][sim.STATE_KEYS.index('gripper_opening')]
        quaternion = self.env.unwrapped.scene.ee_quaternion()
        values = {'ee_x': position[0], 'ee_y': position[1], 'ee_z': position[2], 'ee_qw': quaternion[0],
                  'ee_qx': quaternion[1], 'ee_qy': quaternion[2], 'ee_qz': quaternion[3], 'gripper_opening': opening}
        return np.array([values[k] for k in STATE_KEYS], np.float32)

    def _send(self, chunks: list) -> None:
        for meta, arrays in chunks:
            self.link.send(meta, arrays)

    @property
    def backlog(self) -> int:
        return self.link.backlog

    def close(self) -> None:
        self.link.close()
        self.env.close()


class VlmProgress:
    """LAMP's r_VLM of one episode's frames, R3M(o_0, o_t, instruction), on onnxruntime (no torch): the numbers of
    training.vlm.VlmRewardLabeler (lamp-train's pretraining), frame by frame as the robot steps."""

    def __init__(self, export_dir: Path | None, image_size: int = 0) -> None:
        from models.r3m.runtime import OnnxR3MReward
        if export_dir is None:
            raise ValueError("reward_source 'r3m' needs vlm_reward: an R3M ONNX export directory")
        self.model = OnnxR3MReward.load(export_dir)
        self.image_size = image_size
        self._instructions = EmbeddingCache(lambda text: self.model.embed_instructions([text]))
        self._first: np.ndarray | None = None
        self._instruction: np.ndarray | None = None

    def _embed(self, frame: np.ndarray) -> np.ndarray:
        return self.model.embed_images(frames_at_size(frame[None], self.image_size))

    def start(self, first_frame: np.ndarray, instruction: str) -> None:
        self._first, self._instruction = self._embed(first_frame), self._instructions(instruction)

    def __call__(self, frame: np.ndarray) -> float:
        return float(self.model.score(self._first, self._embed(frame), self._instruction)[0])


def _next_life(work_dir: Path) -> int:
    """How many times this robot (its work directory) started before; counted in work_dir/starts."""
    path = Path(work_dir) / 'starts'
    life = int(path.read_text()) if path.is_file() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, f'{life + 1}\n')
    return life


def _newest_kept_bundle(bundle_dir: Path) -> tuple[str, Path] | None:
    """(version, path) of the newest bundle a previous start of this robot stored (the link client renames a
    complete bundle into place; '.partial' ones start with a dot)."""
    kept = [p for p in bundle_dir.glob('*') if p.is_dir() and not p.name.startswith('.')] if bundle_dir.is_dir() else []
    newest = max(kept, key=lambda p: p.stat().st_mtime, default=None)
    return None if newest is None else (newest.name, newest)
