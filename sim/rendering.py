"""Offscreen camera images from a MuJoCo scene whose model is rebuilt every episode.

mujoco.Renderer binds one model for life; the randomized scenes compile a new model per episode, so
this keeps one GL context and swaps the model-bound render context (textures, meshes) on `bind`.
MUJOCO_GL (egl by default, see sim/__init__.py) picks the GL backend.
"""
from __future__ import annotations

import mujoco
import numpy as np
from mujoco import gl_context


class OffscreenRenderer:
    def __init__(self, height: int, width: int) -> None:
        if height < 1 or width < 1:
            raise ValueError(f'image size must be positive, got {height}x{width}')
        self.height, self.width = height, width
        self._gl: gl_context.GLContext | None = gl_context.GLContext(width, height)
        self._context: mujoco.MjrContext | None = None
        self._scene: mujoco.MjvScene | None = None
        self._model: mujoco.MjModel | None = None
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._flipped = np.empty((height, width, 3), dtype=np.uint8)

    def bind(self, model: mujoco.MjModel) -> None:
        """Render this model from now on (uploads its meshes and textures)."""
        if model.vis.global_.offwidth < self.width or model.vis.global_.offheight < self.height:
            raise ValueError(f'model offscreen buffer {model.vis.global_.offwidth}x{model.vis.global_.offheight} '
                             f'is smaller than the image {self.width}x{self.height}')
        self._gl.make_current()
        if self._context is not None:
            self._context.free()
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=max(100, 2 * model.ngeom))
        self._model = model

    def render(self, data: mujoco.MjData, camera_id: int) -> np.ndarray:
        """RGB image (height, width, 3) uint8 of the bound model's fixed camera `camera_id`."""
        if self._model is None or self._context is None or self._scene is None:
            raise RuntimeError('bind a model before rendering (or the renderer was closed)')
        self._gl.make_current()
        self._camera.fixedcamid = camera_id
        mujoco.mjv_updateScene(self._model, data, self._option, None, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL.value, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._flipped, None, self._rect, self._context)
        return self._flipped[::-1].copy()          # OpenGL rows run bottom-up

    def close(self) -> None:
        """Free the GL resources; rendering afterwards raises."""
        if self._context is not None:
            self._gl.make_current()
            self._context.free()
            self._context = None
        self._scene = self._model = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None
