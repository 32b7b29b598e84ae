"""FAKE rlbench.tasks: the five tasks LAMP finetunes on, with the object names and variation-0 descriptions
of the real task files (positions are made up)."""
from rlbench.backend.task import Task


class PushButton(Task):
    FAKE_OBJECTS = (('push_button_target', 'shape', (0.30, 0.10, 0.77), 0.0),
                    ('target_button_joint', 'joint', (0.30, 0.10, 0.78), 0.0))
    FAKE_GOAL = 'push_button_target'
    FAKE_DESCRIPTIONS = ('push the maroon button', 'push down the maroon button',
                         'press the button with the maroon base', 'press the maroon button')


class TurnTap(Task):
    FAKE_OBJECTS = (('left_joint', 'joint', (0.25, -0.05, 0.95), 0.0),
                    ('right_joint', 'joint', (0.25, 0.05, 0.95), 0.0))
    FAKE_GOAL = 'left_joint'
    FAKE_DESCRIPTIONS = ('turn left tap', 'rotate the left tap', 'grasp the left tap and turn it')


class CloseMicrowave(Task):
    FAKE_OBJECTS = (('microwave_door', 'shape', (0.30, -0.20, 0.95), 0.0),
                    ('microwave_door_joint', 'joint', (0.25, -0.30, 0.95), 1.2))
    FAKE_GOAL = 'microwave_door'
    FAKE_DESCRIPTIONS = ('close microwave', 'shut the microwave', 'close the microwave door',
                         'push the microwave door shut')


class PickUpCup(Task):
    FAKE_OBJECTS = (('cup1', 'shape', (0.30, 0.00, 0.80), 0.0),
                    ('cup2', 'shape', (0.30, 0.20, 0.80), 0.0),
                    ('success', 'proximity_sensor', (0.30, 0.00, 1.10), 0.0))
    FAKE_GRASPABLE = ('cup1', 'cup2')
    FAKE_GOAL = 'cup1'
    FAKE_DESCRIPTIONS = ('pick up the red cup', 'grasp the red cup and lift it', 'lift the red cup')


class TakeLidOffSaucepan(Task):
    FAKE_OBJECTS = (('saucepan_lid_grasp_point', 'shape', (0.25, 0.05, 0.85), 0.0),
                    ('success', 'proximity_sensor', (0.25, 0.05, 1.10), 0.0))
    FAKE_GRASPABLE = ('saucepan_lid_grasp_point',)
    FAKE_GOAL = 'saucepan_lid_grasp_point'
    FAKE_DESCRIPTIONS = ('take lid off the saucepan', 'using the handle, lift the lid off of the pan',
                         'remove the lid from the pan', "grip the saucepan's lid and remove it from the pan",
                         'leave the pan open', 'uncover the saucepan')
