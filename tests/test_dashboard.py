"""The operator dashboard: access rules and episode history (ROS-free), and the real page in Debian's chromium
(through chromedriver) against the running sim graph: the camera image updates with low latency, an
instruction typed in the page reaches `instruction`, the e-stop button stops the arm within two control periods,
a page that took over holds the arm when its connection drops, and beyond loopback a request without the token
is refused while the e-stop needs none."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import yaml
from std_msgs.msg import String

from lamp_ros import contract as c
from lamp_ros.dashboard.access import Access, load_token
from lamp_ros.dashboard.history import EpisodeHistory, LatestFrames
from lamp_ros.ros.convert import twist_linear

PERIOD_S = 1.0 / c.DEFAULT_CONTROL_RATE_HZ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def post(url: str, data: dict | None = None, token: str = '') -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(data or {}).encode(), method='POST',
                                     headers={'Content-Type': 'application/json', **({'X-Token': token} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'{}')


def test_loopback_needs_no_token_elsewhere_every_action_but_the_e_stop_does():
    logged = []
    assert load_token('127.0.0.1', '') == '' and load_token('localhost', '') == ''
    token = load_token('0.0.0.0', '')
    assert len(token) >= 16 and token != load_token('0.0.0.0', '')
    access = Access(token, logged.append)
    assert access.allowed('estop', None, '10.0.0.2'), 'anyone who sees the arm may stop it'
    assert access.allowed('release', token, '10.0.0.2')
    for _ in range(3):
        assert not access.allowed('release', 'wrong', '10.0.0.3')
    assert not access.allowed('start', None, '10.0.0.4')
    assert len(logged) == 2, 'a refused client is logged once'
    assert Access('', logged.append).allowed('release', None, '127.0.0.1')


def test_a_token_file_with_a_short_token_is_refused(tmp_path):
    short = tmp_path / 'token'
    short.write_text('abc\n')
    with pytest.raises(ValueError, match='at least 16'):
        load_token('0.0.0.0', str(short))
    short.write_text('a-long-enough-token-123\n')
    assert load_token('0.0.0.0', str(short)) == 'a-long-enough-token-123'


def test_episodes_become_rows_with_their_reward_and_frames_are_encoded_once():
    history = EpisodeHistory()
    history.on_status({'episode': 1, 'state': 'running', 'step': 0})
    for r in (0.5, 0.25, float('nan')):
        history.on_reward(r)
    history.on_status({'episode': 1, 'state': 'running', 'step': 3, 'interventions': 1})
    history.on_status({'episode': 1, 'state': 'stopped', 'step': 4, 'success': True, 'interventions': 1,
                       'instruction': 'push button'})
    history.on_reward(9.0)                                   # between episodes: nobody's
    history.on_status({'episode': 2, 'state': 'running', 'step': 0})
    history.on_status({'episode': 3, 'state': 'running', 'step': 0})      # 2 replaced without a stop status
    assert [(r['episode'], r['steps'], r['success'], r['reward']) for r in history.as_list()] == [
        (1, 4, True, 0.75), (2, 0, False, 0.0)]
    frames = LatestFrames()
    assert frames.get('front') is None
    frames.put('front', np.zeros((8, 8, 3), np.uint8), 12.5)
    first = frames.get('front')
    assert first[0] == 1 and first[1] == 12.5 and first[2][:2] == b'\xff\xd8'        # a JPEG
    assert frames.get('front') == first


# --- the real page in a real browser ----------------------------------------------------------------------
@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which('chromium'), shutil.which('chromedriver')
    assert chromium and driver, 'Debian chromium and chromium-driver are needed (./scripts/setup.sh installs them)'
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1500,900'):
        options.add_argument(flag)
    b = webdriver.Chrome(service=Service(driver), options=options)
    yield b
    b.quit()


def wait_js(browser, expression: str, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = browser.execute_script(f'return {expression}')
        if value:
            return value
        time.sleep(0.05)
    return browser.execute_script(f'return {expression}')


def test_the_page_shows_the_camera_sends_instructions_and_its_e_stop_stops_the_arm(
        probe, tmp_path, make_bundle, browser):
    from selenium.webdriver.common.by import By
    port = free_port()
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({'dashboard': {'ros__parameters': {'port': port}}}))
    log = tmp_path / 'graph.log'
    twists, instructions = probe.record(c.EE_TWIST_CMD), probe.record(c.INSTRUCTION)
    estops = probe.record(c.ESTOP)
    proc = subprocess.Popen([sys.executable, '-m', 'lamp_ros.cli', 'deploy', '--instruction', 'push button',
                             '--bundle', str(make_bundle(64)), '--params-file', str(params)],
                            stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    try:
        assert probe.wait_for(lambda: f'127.0.0.1:{port}' in log.read_text(), 60), log.read_text()
        browser.get(f'http://127.0.0.1:{port}/')
        assert wait_js(browser, 'window.lampDashboard.frames.front > 5', 60), log.read_text()
        first = browser.execute_script('return window.lampDashboard.frames.front')
        assert wait_js(browser, f'window.lampDashboard.frames.front > {first + 5}', 10), 'the image updates'
        latency = browser.execute_script('return window.lampDashboard.latencyMs.front')
        assert 0 <= latency < 300, f'{latency} ms from capture to the page'
        assert wait_js(browser, "document.getElementById('safety').textContent.includes('safety: ')", 10)

        box = browser.find_element(By.ID, 'instruction')
        box.send_keys('press the red button')
        browser.find_element(By.CSS_SELECTOR, '#instruction-form button').click()
        assert probe.wait_for(lambda: any(m.data == 'press the red button' for _, m in instructions), 15)

        moving = lambda: twists and np.linalg.norm(twist_linear(twists[-1][1])) > 1e-4  # noqa: E731
        assert probe.wait_for(moving, 30), 'the policy moves the arm before the e-stop'
        n = len(twists)
        clicked = time.monotonic()
        browser.find_element(By.ID, 'estop').click()
        stopped = lambda: any(np.linalg.norm(twist_linear(m)) == 0.0 for _, m in twists[n:])  # noqa: E731
        assert probe.wait_for(stopped, 5)
        assert probe.wait_for(lambda: any(m.data for _, m in estops), 5), 'the click reaches the e-stop topic'
        first_zero = next(t for t, m in twists[n:] if np.linalg.norm(twist_linear(m)) == 0.0)
        engaged = next(t for t, m in estops if m.data)
        print(f'camera -> page {latency:.0f} ms; e-stop click -> zero twist {first_zero - clicked:.3f} s '
              f'(e-stop topic -> zero twist {first_zero - engaged:.3f} s)')
        # The safety layer's promise is two control periods from the e-stop message; the browser's half
        # (click -> websocket -> topic) gets a person's reaction-time bound, as a loaded CI host can take 0.6 s.
        assert first_zero - engaged <= 2 * PERIOD_S, f'stopped {first_zero - engaged:.3f} s after the e-stop'
        assert first_zero - clicked <= 1.5, f'stopped {first_zero - clicked:.3f} s after the click'
        probe.spin_for(0.5)
        assert all(np.linalg.norm(twist_linear(m)) == 0.0 for t, m in twists if t > first_zero + 0.05)
        assert wait_js(browser, "document.getElementById('estop').textContent.includes('ENGAGED')", 10)
        if os.environ.get('LAMP_DASHBOARD_SCREENSHOT'):
            browser.save_screenshot(os.environ['LAMP_DASHBOARD_SCREENSHOT'])

        modes = probe.record(c.CONTROL_MODE)
        browser.find_element(By.ID, 'take-over').click()
        assert probe.wait_for(lambda: modes and modes[-1][1].data == 'teleop', 10)
        browser.get('about:blank')                                 # the page in control goes away
        assert probe.wait_for(lambda: modes[-1][1].data == 'hold', 10), 'the arm holds when the page is gone'
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_beyond_loopback_control_needs_the_token_and_the_e_stop_does_not(nodes, probe, tmp_path):
    token_file = tmp_path / 'token'
    token_file.write_text('a-long-enough-token-123\n')
    port = free_port()
    nodes.start('dashboard', {'host': '0.0.0.0', 'port': port, 'token_file': str(token_file)})
    estops = probe.record(c.ESTOP)
    url = f'http://127.0.0.1:{port}'
    end = time.monotonic() + 30
    while time.monotonic() < end and f':{port}' not in nodes.log('dashboard'):
        time.sleep(0.2)
    assert '?token=a-long-enough-token-123' in nodes.log('dashboard')
    assert post(f'{url}/api/release')[0] == 403
    assert post(f'{url}/api/instruction', {'value': 'x'}, token='wrong')[0] == 403
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f'{url}/api/state', timeout=10)
    assert refused.value.code == 403
    assert post(f'{url}/api/estop') == (200, {'ok': True, 'message': 'e-stop engaged'})
    assert probe.wait_for(lambda: estops and estops[-1][1].data is True, 10)
    assert post(f'{url}/api/release', token='a-long-enough-token-123')[0] == 200
    assert probe.wait_for(lambda: estops[-1][1].data is False, 10)
    probe.spin_for(0.3)
    assert nodes.log('dashboard').count('refused') == 1, 'one line per refused client'
    probe.publish(c.INSTRUCTION, String(data='unused'))         # the node is up and listening after all that
    assert nodes.alive('dashboard')
