"""camera node: frames -> camera/image_raw (rgb8), stamped at capture time, cropped and resized to the configured
size, at most rate_hz; with a calibration_file also camera/camera_info (the calibration fitted to those frames,
same stamp). Frames come from OpenCV (device index, video file or URL; reconnects after a drop; capture runs in
its own thread so a blocking device read never stalls the executor) or, with compressed_topic, from another
driver's sensor_msgs/CompressedImage (JPEG or PNG), keeping that driver's capture stamps."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from lamp_ros import contract as c
from lamp_ros.core.calibration import Calibration, CalibrationError, fitted, load_calibration
from lamp_ros.core.frame_source import CameraConfig, FrameSource, to_output
from lamp_ros.core.images import ImageRejected
from lamp_ros.core.pacing import ImagePacer
from lamp_ros.ros.convert import camera_info_msg, compressed_array, image_msg, to_sec
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.fault_reporting import node_fault_log
from lamp_ros.ros.interfaces import profile
from lamp_ros.ros.node_process import BadParameter, declare, run_node


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__('camera')
        d = CameraConfig()
        try:
            self.config = CameraConfig(
                source=str(declare(self, 'source', d.source, "Device index ('0'), video file path or stream URL.")),
                width=declare(self, 'width', d.width, 'Output width, pixels.'),
                height=declare(self, 'height', d.height, 'Output height, pixels.'),
                rate_hz=declare(self, 'rate_hz', d.rate_hz,
                                'Publish at most this rate, Hz (files play at this rate).'),
                crop=declare(self, 'crop', d.crop, "'center': crop to the output aspect ratio first; 'none': stretch."),
                loop=declare(self, 'loop', d.loop, 'Video files: start again at the end.'),
                reconnect_interval_s=declare(self, 'reconnect_interval_s', d.reconnect_interval_s,
                                             'Seconds between reconnection attempts.'))
        except ValueError as e:
            raise BadParameter(str(e)) from None
        self.frame_id = declare(self, 'camera_frame_id', 'camera_front', 'frame_id of the published images.')
        calibration_file = declare(self, 'calibration_file', '',
                                   'camera_calibration YAML of the capture resolution: camera/camera_info is '
                                   'published, fitted to the output frames (empty: none).')
        compressed_topic = declare(self, 'compressed_topic', '',
                                   "Take frames from this sensor_msgs/CompressedImage topic (e.g. another driver's "
                                   "'image_raw/compressed') instead of OpenCV (empty: OpenCV `source`).")
        try:
            self.calibration = load_calibration(Path(calibration_file).expanduser()) if calibration_file else None
        except CalibrationError as e:
            raise BadParameter(str(e)) from None
        self._fitted: dict[tuple[int, int], Calibration | None] = {}
        self.faults = node_fault_log(self, 'frame refused')
        self.pub = self.create_publisher(Image, c.CAMERA_IMAGE.name, profile(c.CAMERA_IMAGE))
        self.info_pub = self.create_publisher(CameraInfo, c.CAMERA_INFO.name, profile(c.CAMERA_INFO))
        self.published = 0
        self._stop = threading.Event()
        self.source: FrameSource | None = None
        if compressed_topic:
            self._pacer = ImagePacer(self.config.rate_hz, min_fraction=0.9)
            self.create_subscription(CompressedImage, compressed_topic, self._on_compressed, profile(c.Qos.SENSOR))
            self.get_logger().info(f'camera: frames from {compressed_topic} (CompressedImage)')
            return
        self.source = FrameSource(self.config, log=self.get_logger().info)
        self._thread = threading.Thread(target=self._capture_loop, name='capture', daemon=True)
        self._thread.start()

    def health(self) -> Health:
        values = {'published': self.published, 'camera_info': self.calibration is not None}
        if self.source is not None and not self.source.connected:
            return Health('error', f'source {self.config.source!r} not open (reconnecting)', values)
        if not self.published:
            return Health('warn', 'no frame published yet', values)
        return Health('ok', f'publishing {self.config.width}x{self.config.height}', values)

    def _publish(self, frame: np.ndarray, stamp, capture_size: tuple[int, int]) -> None:
        self.pub.publish(image_msg(frame, stamp, self.frame_id))
        self.published += 1
        calibration = self._calibration_for(capture_size)
        if calibration is not None:
            self.info_pub.publish(camera_info_msg(calibration, stamp, self.frame_id))

    def _calibration_for(self, capture_size: tuple[int, int]) -> Calibration | None:
        """The calibration fitted to this capture size (once per size); None without one or if it does not fit."""
        if self.calibration is None:
            return None
        if capture_size not in self._fitted:
            try:
                self._fitted[capture_size] = fitted(self.calibration, *capture_size, self.config)
            except CalibrationError as e:
                self.get_logger().error(f'camera_info not published: {e}')
                self._fitted[capture_size] = None
        return self._fitted[capture_size]

    def _on_compressed(self, msg: CompressedImage) -> None:
        t = to_sec(msg.header.stamp)
        if not self._pacer.due(t):
            return
        try:
            frame = compressed_array(msg)
        except ImageRejected as e:
            self.faults.fault('compressed_topic', e.code, f'frame not published: {e}')
            return
        self._pacer.acted(t)
        self._publish(to_output(frame, self.config), msg.header.stamp, (frame.shape[1], frame.shape[0]))

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
            self._publish(frame, stamp, self.source.capture_size)
            if paced_by_us:
                next_t = max(next_t + period, time.monotonic() - period)
                self._stop.wait(max(0.0, next_t - time.monotonic()))

    def on_shutdown(self) -> None:
        self._stop.set()
        if self.source is not None:
            self._thread.join(timeout=2.0)
            self.source.close()


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
