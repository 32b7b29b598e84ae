"""Logging faults without flooding: one line when a fault starts, one when it clears, a count in between.

A robot (or anything else that can reach the port or a topic) may send the same bad message thousands of
times a second, or every other message bad; the learner and the nodes must still say what is wrong, once,
and say when it stopped (lamp_ros/ros/fault_reporting.py gives a node one).
A fault is keyed by (peer, code) and clears after `clear_after_s` without a repeat (`sweep`, called
periodically). At most `max_open` faults are tracked: beyond that (a storm from many peers) new ones are
only counted, and one line says so.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass


@dataclass
class _Open:
    count: int
    last: float


class FaultLog:
    def __init__(self, logger: logging.Logger, what: str = 'message refused', clear_after_s: float = 10.0,
                 max_open: int = 32) -> None:
        self.log, self.what = logger, what
        self.clear_after_s, self.max_open = clear_after_s, max_open
        self.counts: Counter[str] = Counter()            # code -> faults since start (for status)
        self._open: dict[tuple[str, str], _Open] = {}
        self._untracked = 0
        self._lock = threading.Lock()                    # status reads from another thread

    def fault(self, peer: str, code: str, reason: str) -> None:
        with self._lock:
            self.counts[code] += 1
            entry = self._open.get((peer, code))
            if entry is not None:
                entry.count += 1
                entry.last = time.monotonic()
            elif len(self._open) < self.max_open:
                self._open[(peer, code)] = _Open(1, time.monotonic())
                self.log.warning('%s: %s (%s): %s [repeats are counted, not logged]', peer, self.what, code,
                                 reason)
            else:
                self._untracked += 1
                if self._untracked == 1:
                    self.log.warning('more than %d faults at once: further ones are counted only', self.max_open)

    def sweep(self) -> None:
        """Close the faults not repeated for clear_after_s."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, e in self._open.items() if now - e.last > self.clear_after_s]:
                entry = self._open.pop(key)
                self.log.info('%s: %s (%s) cleared: none for %.0f s, %d in all', key[0], self.what, key[1],
                              self.clear_after_s, entry.count)
            if self._untracked and not self._open:
                self.log.info('%d further faults were counted, not logged', self._untracked)
                self._untracked = 0

    def active(self) -> list[str]:
        with self._lock:
            return [f'{peer}: {code} x{e.count}' for (peer, code), e in self._open.items()]

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)
