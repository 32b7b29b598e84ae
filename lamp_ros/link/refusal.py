"""A message the learner will not take, and the answer the robot gets for it.

Every refusal has a `code` (what kind of fault: the log and the robot group by it), a one-line `reason` for
a human, and `permanent`: whether sending the same message again could ever succeed. A robot sets a
permanently refused chunk aside (it stays on its disk, out of the backlog) and resends a transiently refused
one later; `hello_first` makes it introduce itself again (the learner restarted and forgot it).
"""
from __future__ import annotations

from lamp_ros.link.wire import Message

MALFORMED = 'malformed'              # not a message of the protocol (frames, header, buffers)
TOO_LARGE = 'too_large'              # over the learner's max_message_bytes (or too many frames)
HELLO_FIRST = 'hello_first'          # a robot that has not (or no longer) completed a valid hello
BAD_HELLO = 'bad_hello'              # a hello that announces what this learner cannot take
REWARD_SOURCE = 'reward_source'      # a hello announcing another reward source than the run trains on
BAD_CHUNK = 'bad_chunk'              # a chunk not as its hello announced (types, shapes, dtypes, ids)
EPISODE_CONFLICT = 'episode_conflict'    # a chunk that does not fit the chunks stored for its episode
STORE_FAILED = 'store_failed'        # the learner could not write it (disk): try again later
UNEXPECTED = 'unexpected'            # a kind of message a robot never sends
REASON_CHARS = 300


class Refused(Exception):
    def __init__(self, code: str, reason: str, permanent: bool = True) -> None:
        super().__init__(f'{code}: {reason}')
        self.code, self.reason, self.permanent = code, reason[:REASON_CHARS], permanent


def refusal_message(refused: Refused, chunk_id: str = '') -> Message:
    return Message('refused', {'code': refused.code, 'reason': refused.reason, 'permanent': refused.permanent,
                               'chunk_id': chunk_id})
