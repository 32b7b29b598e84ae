"""kill -9 of a `lamp-ros learner` process in the middle of heavy intake, then a restart: every episode a
robot delivered reaches the training replay exactly once (incoming/ is rescanned on start; the robot resends
what was not acknowledged, a duplicate is acknowledged without being stored again)."""
import signal
import subprocess
import sys

import numpy as np

from lamp_ros.learner.chunk_store import SOURCE_KEY
from tests.robot_traffic import episode_chunks, free_port, robot, wait

EPISODES = 40


def start(run, endpoint, log):
    return subprocess.Popen([sys.executable, '-m', 'lamp_ros.cli', 'learner', '--run', str(run), '--preset', 'debug',
                             '--bind', endpoint, '--bundle-every', '100000'], stdout=open(log, 'a'),
                            stderr=subprocess.STDOUT)


def test_kill_9_during_intake_loses_and_repeats_no_episode(tmp_path):
    run, log, endpoint = tmp_path / 'run', tmp_path / 'learner.log', f'tcp://127.0.0.1:{free_port()}'
    learner = start(run, endpoint, log)
    client = robot(tmp_path, endpoint)
    try:
        keys = []
        for e in range(EPISODES):
            chunks = episode_chunks(steps=7, chunk_steps=3, seed=e)
            keys.append(chunks[0][0]['episode'])
            for meta, arrays in chunks:
                client.send(meta, arrays)
        total = client.backlog
        assert wait(lambda: client.chunks_acked >= total // 2, 60), log.read_text()[-3000:]
        learner.send_signal(signal.SIGKILL)                 # in the middle of the intake
        learner.wait()
        assert client.backlog > 0, 'the kill came too late to test anything'
        learner = start(run, endpoint, log)
        assert wait(lambda: client.backlog == 0, 60), (client.backlog, log.read_text()[-3000:])
        learner.send_signal(signal.SIGINT)
        assert learner.wait(30) == 0, log.read_text()[-3000:]
    finally:
        client.close()
        if learner.poll() is None:
            learner.kill()
            learner.wait()
    sources = [str(np.load(p)[SOURCE_KEY]) for p in sorted((run / 'replay').glob('*.npz'))]
    assert sorted(sources) == sorted(keys), 'every episode in the replay, once'
    assert not [p for p in (run / 'incoming').iterdir() if p.is_dir()], 'nothing left behind in incoming/'
