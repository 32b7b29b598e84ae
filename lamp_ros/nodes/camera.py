"""camera node: OpenCV capture (device index, video file or URL) -> camera/image_raw (rgb8), stamped at
capture time, cropped and resized to the configured size, at most rate_hz; reconnects after a drop.
Capture runs in its own thread so a blocking device read never stalls the executor."""
from __future__ import annotations

import threading
import time

from rclpy.node import Node
from sensor_msgs.msg import Image

from lamp_ros import contract as c
from lamp_ros.core.frame_source import CameraConfig, FrameSource
from lamp_ros.core.pacing import ImagePacer
from lamp_ros.ros.convert import image_msg, to_sec
from lamp_ros.ros.node_process import declare, run_node
from lamp_ros.ros.interfaces import profile


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__('camera')
        d = CameraConfig()
        self.config = CameraConfig(
            source=str(declare(self, 'source', d.source, "Device index ('0'), video file path or stream URL.")),
            width=declare(self, 'width', d.width, 'Output width, pixels.'),
            height=declare(self, 'height', d.height, 'Output height, pixels.'),
            rate_hz=declare(self, 'rate_hz', d.rate_hz, 'Publish at most this rate, Hz (files play at this rate).'),
            crop=declare(self, 'crop', d.crop, "'center': crop to the output aspect ratio first; 'none': stretch."),
            loop=declare(self, 'loop', d.loop, 'Video files: start again at the end.'),
            reconnect_interval_s=declare(self, 'reconnect_interval_s', d.reconnect_interval_s,
                                         'Seconds between reconnection attempts.'))
        self.frame_id = declare(self, 'camera_frame_id', 'camera_front', 'frame_id of the published images.')
        self.pub = self.create_publisher(Image, c.CAMERA_IMAGE.name, profile(c.CAMERA_IMAGE))
        self.source = FrameSource(self.config, log=self.get_logger().info)
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._capture_loop, name='capture', daemon=True)
        self._thread.start()

    def _capture_loop(self) -> None:
        period = 1.0 / self.config.rate_hz
        paced_by_us = self.config.kind == 'file'            # devices and streams deliver at their own rate
        pacer = ImagePacer(self.config.rate_hz, min_fraction=0.9)
        next_t = time.monotonic()
        while not self._stop.is_set():
            got = self.source.read(stamp=lambda: self.get_clock().now().to_msg())
            if got is None:
                self._stop.wait(0.05)
                continue
            frame, stamp = got
            t = to_sec(stamp)
            if not paced_by_us and not pacer.due(t):
                continue
            pacer.acted(t)
            self.pub.publish(image_msg(frame, stamp, self.frame_id))
            self.published += 1
            if paced_by_us:
                next_t = max(next_t + period, time.monotonic() - period)
                self._stop.wait(max(0.0, next_t - time.monotonic()))

    def on_shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.source.close()


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
