"""The package installs what `ros2 run`, `ros2 launch` and the CLI need, and its configuration matches
the code (every YAML parameter is one a node declares)."""
import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from lamp_ros import graph

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Built from a copy of the source: setuptools reuses a build/ directory, which could hide a file the
    package no longer ships (and building in place would leave one behind). The copy leaves out the default
    bundle's 90 MB text encoder, which is not in git: the package builds without it (as from a clean clone)."""
    src = tmp_path_factory.mktemp('src') / 'lamp_ros'
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns('.git', '.venv', 'build', '*.egg-info', '__pycache__',
                                                             '.pytest_cache', 'text_encoder.onnx'))
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(out),
                    str(src)], check=True)
    (path,) = out.glob('lamp_ros-*.whl')
    return zipfile.ZipFile(path)


def test_wheel_installs_ros_layout(wheel):
    names = set(wheel.namelist())
    data = 'lamp_ros-0.1.0.data/data/'
    expected = [f'{data}share/ament_index/resource_index/packages/lamp_ros', f'{data}share/lamp_ros/package.xml',
                f'{data}share/lamp_ros/launch/deploy.launch.py', f'{data}share/lamp_ros/launch/finetune.launch.py',
                f'{data}share/lamp_ros/config/common.yaml']
    expected += [f'{data}share/lamp_ros/config/{n.name}.yaml' for n in graph.NODES]
    expected += [f'{data}lib/lamp_ros/{n.executable}' for n in graph.NODES]
    expected += [f'{data}share/lamp_ros/bundles/default/{f}' for f in ('manifest.json', 'policy.onnx',
                                                                      'tokenizer/vocab.txt')]
    missing = [e for e in expected if e not in names]
    assert not missing, f'wheel lacks {missing}'
    for n in graph.NODES:                                         # executable bit survives into the wheel
        mode = wheel.getinfo(f'{data}lib/lamp_ros/{n.executable}').external_attr >> 16
        assert mode & 0o111, f'lib/lamp_ros/{n.executable} is not executable'
    for kind in ('textures', 'meshes', 'instructions'):
        assert any(name.startswith(f'sim/assets/{kind}/') for name in names), f'wheel lacks sim/assets/{kind}'
    entry_points = wheel.read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
    assert 'lamp-ros = lamp_ros.cli:main' in entry_points


def test_installed_package_finds_its_share_files_and_default_bundle(wheel, tmp_path):
    """A non-editable install reads config/ and the shipped bundle from <prefix>/share/lamp_ros."""
    prefix = tmp_path / 'prefix'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-index', '--ignore-installed', '-q',
                    '--prefix', str(prefix),
                    wheel.filename], check=True)
    (site,) = prefix.glob('lib/python*/site-packages')
    code = ('from lamp_ros import paths; print(paths.__file__); print(paths.share_dir()); '
            'print(paths.default_bundle_dir())')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path, check=True,
                         env={**os.environ, 'PYTHONPATH': str(site), 'AMENT_PREFIX_PATH': str(prefix)})
    module, share, bundle = map(Path, out.stdout.split())
    assert module.is_relative_to(site), f'imported {module}, not the installed copy'
    assert share == prefix / 'share' / 'lamp_ros' and bundle == share / 'bundles' / 'default'
    assert (bundle / 'manifest.json').is_file() and (bundle / 'tokenizer' / 'vocab.txt').is_file()


def test_every_node_has_executable_and_config():
    for n in graph.NODES:
        exe = REPO / 'exec' / n.executable
        assert exe.is_file() and os.access(exe, os.X_OK), exe
        assert f'lamp_ros.nodes.{n.executable} import main' in exe.read_text()
        assert (REPO / 'config' / f'{n.name}.yaml').is_file()


def declared_parameters(module: str) -> set[str]:
    """Names passed to declare(self, '<name>', ...) in a node module."""
    tree = ast.parse((REPO / 'lamp_ros' / 'nodes' / f'{module}.py').read_text())
    return {call.args[1].value for call in ast.walk(tree)
            if isinstance(call, ast.Call) and getattr(call.func, 'id', '') == 'declare'
            and isinstance(call.args[1], ast.Constant)}


def yaml_parameters(path: Path) -> set[str]:
    data = yaml.safe_load(path.read_text())
    if data is None:
        return set()                  # comments only: the node's defaults apply (config/safety.yaml)
    (section,) = data.values()
    return set(section['ros__parameters'])


def test_config_files_only_set_declared_parameters():
    all_declared = set()
    for n in graph.NODES:
        declared = declared_parameters(n.executable)
        all_declared |= declared
        unknown = yaml_parameters(REPO / 'config' / f'{n.name}.yaml') - declared
        assert not unknown, f'config/{n.name}.yaml sets parameters {n.executable} never declares: {unknown}'
    unknown = yaml_parameters(REPO / 'config' / 'common.yaml') - all_declared
    assert not unknown, f'config/common.yaml sets parameters no node declares: {unknown}'


def test_robot_params_files_set_only_declared_parameters():
    declared = {n.name: declared_parameters(n.executable) for n in graph.NODES}
    files = sorted((REPO / 'config' / 'robots').glob('*.yaml'))
    assert files
    for path in files:
        for key, section in yaml.safe_load(path.read_text()).items():
            names = set(section['ros__parameters'])
            known = set().union(*declared.values()) if key == '/**' else declared[key]
            assert names <= known, f'{path.name} sets {names - known} for {key}, which no node declares'


def test_launch_files_are_launch_descriptions():
    for mode in graph.MODES:
        path = REPO / 'launch' / f'{mode}.launch.py'
        tree = ast.parse(path.read_text())
        funcs = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}
        assert 'generate_launch_description' in funcs
        assert f"generate('{mode}')" in path.read_text()


def test_package_xml_declares_runtime_dependencies():
    text = (REPO / 'package.xml').read_text()
    assert '<package format="3">' in text and '<build_type>ament_python</build_type>' in text
    for dep in ('rclpy', 'sensor_msgs', 'geometry_msgs', 'std_msgs', 'std_srvs'):
        assert f'<exec_depend>{dep}</exec_depend>' in text


def test_cli_help_for_every_command():
    for args in ([], ['deploy'], ['finetune'], ['run'], ['graph'], ['env']):
        out = subprocess.run([sys.executable, '-m', 'lamp_ros.cli', *args, '--help'], capture_output=True, text=True)
        assert out.returncode == 0 and 'usage: lamp-ros' in out.stdout, out.stderr


def test_every_node_answers_help_without_starting():
    for n in graph.NODES:
        out = subprocess.run([sys.executable, str(REPO / 'exec' / n.executable), '--help'], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and f'ros2 run lamp_ros {n.executable}' in out.stdout, (n.executable, out.stderr)
        assert f'config/{n.executable}.yaml' in out.stdout and len(out.stdout.splitlines()) > 3


def test_env_puts_the_install_python_first(monkeypatch, capsys):
    """The node executables start `#!/usr/bin/env python3`: with the venv not activated they need its PATH."""
    from lamp_ros import cli
    monkeypatch.setattr(cli, 'share_dir', lambda: Path(sys.prefix) / 'share' / 'lamp_ros')
    assert cli._print_env(None) == 0
    out = capsys.readouterr().out
    assert f'export PATH="{Path(sys.prefix) / "bin"}:$PATH"' in out and 'AMENT_PREFIX_PATH' in out
