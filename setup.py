"""ament_python package `lamp_ros`, installable with colcon or pip.

Both install paths put the ROS pieces where ROS tools look for them:
  share/lamp_ros/{package.xml,launch/,config/}, the ament index marker, and the node
  executables in lib/lamp_ros/ (from exec/, so `ros2 run lamp_ros <node>` works after a pip install too).
The shipped policy bundle goes to share/lamp_ros/bundles/default/, with its text_encoder.onnx when that
was built before (./scripts/setup.sh, `lamp-export text-encoder`; it is not in git).
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'lamp_ros'
BUNDLE = 'bundles/default'

setup(
    name=PACKAGE,
    version='0.1.0',
    description='LAMP real-robot deployment, finetuning and teleop stack on ROS 2',
    license='MIT',
    python_requires='>=3.10',
    packages=find_packages(include=['lamp_ros', 'lamp_ros.*', 'sim', 'sim.*', 'models', 'models.*', 'training', 'training.*']),
    package_data={'sim': ['assets/textures/*/*.png', 'assets/meshes/*/*.obj', 'assets/instructions/*.txt',
                          'assets/instructions/*/*.txt'],
                  'lamp_ros.dashboard': ['static/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', sorted(glob('launch/*.launch.py'))),
        (f'share/{PACKAGE}/config', sorted(glob('config/*.yaml') + glob('config/*.xml'))),
        (f'lib/{PACKAGE}', sorted(glob('exec/*'))),
        (f'share/{PACKAGE}/{BUNDLE}', [f'{BUNDLE}/manifest.json', f'{BUNDLE}/policy.onnx']
         + glob(f'{BUNDLE}/text_encoder.onnx')),
        (f'share/{PACKAGE}/{BUNDLE}/tokenizer', [f'{BUNDLE}/tokenizer/vocab.txt']),
    ],
    # rclpy and the message packages come from the ROS install (or requirements-ros.txt).
    install_requires=['numpy', 'opencv-python-headless', 'onnxruntime', 'tokenizers', 'PyYAML', 'pyzmq'],
    extras_require={
        'sim': ['mujoco>=4.0', 'gymnasium>=1.0', 'tqdm'],
        'train': ['torch>=2.2,<=2.14.1', 'transformers', 'onnx', 'safetensors', 'tqdm', 'tensorboard', 'matplotlib'],
        'operator': ['prompt_toolkit', 'mcap', 'mcap-ros2-support', 'pygame', 'pyspacemouse'],
        'test': ['pytest', 'pytest-timeout', 'pexpect', 'pyte'],
    },
    zip_safe=False,
    entry_points={
        'console_scripts': [
            'lamp-ros = lamp_ros.cli:main',
            'lamp-export = lamp_ros.entry:lamp_export',         # the workstation's tools: on the robot install,
            'lamp-models = lamp_ros.entry:lamp_models',         # one line saying they need the workstation's
            'lamp-sim = lamp_ros.entry:lamp_sim',
            'lamp-train = lamp_ros.entry:lamp_train',
        ],
    },
)
