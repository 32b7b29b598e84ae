"""One source for the safe defaults: SafetyConfig's defaults are the table-top values, config/ only overrides,
and every key the graph's parameter files give the safety node is a parameter the node really declares (a
misspelt key would otherwise be ignored silently, leaving the default in force)."""
import numpy as np
import yaml

from lamp_ros import graph
from lamp_ros.core.safety import SafetyConfig
from lamp_ros.paths import config_file

NODE_KEYS = ('/**', 'safety', '/safety')          # YAML sections that reach a node named safety


def safety_launch() -> graph.NodeLaunch:
    return next(n for n in graph.build('deploy', instruction='push button', bundle='/b').nodes
                if n.spec.name == 'safety')


def yaml_params(path) -> dict:
    """The parameters a YAML file gives a node named safety (a file of comments only gives none)."""
    data = yaml.safe_load(path.read_text()) or {}
    return {key: value for section, params in data.items() if section in NODE_KEYS
            for key, value in (params or {}).get('ros__parameters', {}).items()}


def test_every_config_key_for_the_safety_node_is_a_declared_parameter(rclpy_session, state_home):
    from lamp_ros.nodes.safety import SafetyNode
    node = SafetyNode()                            # in this process: the parameters it declares at run time
    try:
        files = safety_launch().params_files      # safety.yaml, comments only, is left out (graph._holds_values)
        assert [f.name for f in files] == ['common.yaml']
        for f in (*files, config_file('safety.yaml')):
            unknown = sorted(k for k in yaml_params(f) if not node.has_parameter(k))
            assert not unknown, f'{f} sets {unknown}, which the safety node does not declare'
        for name, value in vars(SafetyConfig()).items():      # the node's defaults are SafetyConfig's
            declared = node.get_parameter(name).value
            assert list(declared) == list(value) if isinstance(value, tuple) else declared == value, name
    finally:
        node.destroy_node()


def test_the_safe_defaults_are_the_table_top_values_and_config_only_overrides_them():
    cfg = SafetyConfig()
    assert cfg.workspace_min == (0.22, -0.26, 0.01) and cfg.workspace_max == (0.70, 0.26, 0.31)
    assert (cfg.max_step_m, cfg.max_speed_mps, cfg.max_accel_mps2) == (0.03, 0.3, 3.0)
    path = config_file('safety.yaml')
    params = yaml_params(path)
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}
    repeated = sorted(k for k, v in params.items() if k in defaults and defaults[k] == v)
    assert not repeated, f'{path} repeats the defaults of {repeated}: a second source of the safe values'


def test_the_sim_arm_home_and_the_experts_workspace_lie_inside_the_default_box():
    from sim.robot import ArmConfig
    lo, hi = np.array(SafetyConfig().workspace_min), np.array(SafetyConfig().workspace_max)
    home = np.array(ArmConfig().home_tcp)
    assert np.all(lo < home) and np.all(home < hi)
    experts = np.array([[0.25, -0.22, 0.04], [0.65, 0.20, 0.30]])  # docs/sim.md: 30 seeds of every task
    assert np.all(lo < experts) and np.all(experts < hi)
