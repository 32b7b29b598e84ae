"""Who may do what on the dashboard (ROS-free). Bound to loopback, only people on the robot computer reach the
page: no token. Bound to any other address, every control action (release the e-stop, start, take over, ...)
must carry the token, printed at start or read from a file; engaging the e-stop never needs one, so anyone who
can see the arm can stop it. A refused client is logged once, not once per request."""
from __future__ import annotations

import hmac
import ipaddress
import secrets
from pathlib import Path
from typing import Callable

LOOPBACK_HOSTS = ('localhost',)
OPEN_ACTIONS = frozenset({'estop'})           # engaging the e-stop: no token, ever


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_token(host: str, token_file: str) -> str:
    """'' on loopback; else the token in `token_file` (first line), or a fresh random one."""
    if is_loopback(host):
        return ''
    if token_file:
        token = Path(token_file).expanduser().read_text().strip().splitlines()[0].strip() \
            if Path(token_file).expanduser().is_file() else ''
        if len(token) < 16:
            raise ValueError(f'token_file {token_file}: needs a token of at least 16 characters on its first line')
        return token
    return secrets.token_urlsafe(24)


class Access:
    def __init__(self, token: str, log: Callable[[str], None]) -> None:
        self.token = token
        self._log = log
        self._refused: set[str] = set()

    @property
    def needs_token(self) -> bool:
        return bool(self.token)

    def allowed(self, action: str, token: str | None, client: str) -> bool:
        """May `client` (its address) do `action` with `token`? A first refusal per client is logged."""
        if action in OPEN_ACTIONS or not self.token:
            return True
        if token is not None and hmac.compare_digest(token.encode(), self.token.encode()):
            return True
        if client not in self._refused:
            self._refused.add(client)
            self._log(f'dashboard: refused {action!r} from {client} (no or wrong token; further refusals of this '
                      'client are not logged)')
        return False
