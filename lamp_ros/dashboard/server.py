"""The dashboard's web side (aiohttp, in its own thread and event loop): the static page, one WebSocket per open
page (state as JSON ten times a second, camera frames as binary messages the moment they are new), and plain
HTTP for the e-stop, which works from a bare HTML form when the page's scripts or its WebSocket have failed.

Binary frame message: 1 byte camera index (in `cameras` order), 8 bytes capture stamp (float64 seconds, little
endian), then the JPEG. Control messages from the page: JSON {"action": ..., "value": ...}."""
from __future__ import annotations

import asyncio
import json
import struct
import threading
from pathlib import Path
from typing import Any, Callable, Protocol

from aiohttp import WSMsgType, web

from lamp_ros.dashboard.access import Access
from lamp_ros.dashboard.history import LatestFrames

STATIC = Path(__file__).resolve().parent / 'static'
STATE_PERIOD_S = 0.1
FRAME_POLL_S = 0.01
ACTIONS = ('instruction', 'start', 'stop', 'reset', 'label', 'take_over', 'give_back', 'estop', 'release')


class Controller(Protocol):
    """What the page reads and does, through the dashboard node."""
    cameras: tuple[str, ...]
    frames: LatestFrames

    def snapshot(self) -> dict[str, Any]: ...

    def act(self, action: str, value: Any, holder: str) -> str: ...     # raises ValueError on bad input

    def connection_lost(self, holder: str) -> None: ...


class DashboardServer:
    def __init__(self, controller: Controller, host: str, port: int, access: Access,
                 log: Callable[[str], None]) -> None:
        self.controller, self.host, self.port, self.access, self.log = controller, host, port, access, log
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    @property
    def watching(self) -> bool:
        """A page is open: only then are frames worth keeping (the node does no image work for nobody)."""
        return bool(self._sockets)

    def start(self) -> int:
        """Bind and serve in a background thread; the bound port (OSError when the port is taken)."""
        app = web.Application()
        app.router.add_get('/', self._index)
        app.router.add_static('/static/', STATIC)
        app.router.add_get('/ws', self._websocket)
        app.router.add_get('/api/state', self._state)
        app.router.add_post('/api/estop', self._estop)
        app.router.add_post('/api/{action}', self._action)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=1.0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, name='dashboard-web', daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._thread = None

    async def _shutdown(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- HTTP ----------------------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / 'index.html')

    def _token(self, request: web.Request, form: dict[str, Any] | None = None) -> str | None:
        return request.headers.get('X-Token') or request.query.get('token') or (form or {}).get('token')

    async def _state(self, request: web.Request) -> web.Response:
        if not self.access.allowed('state', self._token(request), request.remote or '?'):
            return web.json_response({'error': 'token required'}, status=403)
        return web.json_response(self.controller.snapshot())

    async def _estop(self, request: web.Request) -> web.StreamResponse:
        """Engage the e-stop: no token, no script needed (a plain form posts here)."""
        self.controller.act('estop', True, f'http:{request.remote}')
        if 'text/html' in request.headers.get('Accept', ''):
            raise web.HTTPSeeOther('/')
        return web.json_response({'ok': True, 'message': 'e-stop engaged'})

    async def _action(self, request: web.Request) -> web.Response:
        action = request.match_info['action']
        form = dict(await request.post()) if request.content_type != 'application/json' else await request.json()
        if action not in ACTIONS or action in ('take_over', 'give_back'):
            return web.json_response({'error': f'unknown action {action!r} here (take over needs the live '
                                               'page connection)'}, status=404)
        if not self.access.allowed(action, self._token(request, form), request.remote or '?'):
            return web.json_response({'error': 'token required'}, status=403)
        try:
            message = self.controller.act(action, form.get('value'), f'http:{request.remote}')
        except ValueError as e:
            return web.json_response({'error': str(e)}, status=400)
        return web.json_response({'ok': True, 'message': message})

    # --- WebSocket -----------------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        if not self.access.allowed('watch', request.query.get('token'), request.remote or '?'):
            raise web.HTTPForbidden(text='token required')
        ws = web.WebSocketResponse(heartbeat=2.0)
        await ws.prepare(request)
        holder = f'ws:{request.remote}:{id(ws)}'
        self._sockets.add(ws)
        sender = asyncio.ensure_future(self._send_loop(ws))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_json({'reply': self._on_message(msg.data, holder)})
        finally:
            sender.cancel()
            self._sockets.discard(ws)
            self.controller.connection_lost(holder)
        return ws

    def _on_message(self, text: str, holder: str) -> dict[str, Any]:
        try:
            message = json.loads(text)
            action = message['action']
            if action not in ACTIONS:
                raise ValueError(f'unknown action {action!r}')
            return {'action': action, 'ok': True,
                    'message': self.controller.act(action, message.get('value'), holder)}
        except (ValueError, KeyError, TypeError) as e:
            return {'ok': False, 'message': f'refused: {e}'}

    async def _send_loop(self, ws: web.WebSocketResponse) -> None:
        sent = {camera: 0 for camera in self.controller.cameras}
        next_state = 0.0
        loop = asyncio.get_running_loop()
        while not ws.closed:
            for index, camera in enumerate(self.controller.cameras):
                frame = self.controller.frames.get(camera)
                if frame is not None and frame[0] != sent[camera]:
                    sent[camera] = frame[0]
                    await ws.send_bytes(struct.pack('<Bd', index, frame[1]) + frame[2])
            if loop.time() >= next_state:
                next_state = loop.time() + STATE_PERIOD_S
                await ws.send_json({'state': self.controller.snapshot()})
            await asyncio.sleep(FRAME_POLL_S)
