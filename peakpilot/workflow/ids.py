"""Nomination ids: 16 hex characters that sort in the order the rows were created.

The first 11 characters are the wall-clock millisecond of creation (not the engine's
clock, which a replay may freeze), the last 5 a random part that only grows within one
millisecond of one process. So ``ORDER BY id`` lists nominations as they were made, and
new rows land at the end of the primary-key index.

The random part needs to differ between processes, not to be unguessable (an id grants
nothing; every read and command checks the actor): ``random`` is reseeded in a forked
child, and unlike ``secrets`` it costs no system call, on a path every transition takes
(each notice gets an id).
"""

from __future__ import annotations

import random
import threading
import time

_RANDOM_BITS = 20
_lock = threading.Lock()
_last = (0, 0)


def new_id() -> str:
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        if millis <= last_millis:
            millis, random_part = last_millis, last_random + 1
            if random_part >= 1 << _RANDOM_BITS:
                millis, random_part = last_millis + 1, random.getrandbits(_RANDOM_BITS - 1)
        else:
            random_part = random.getrandbits(_RANDOM_BITS - 1)  # room to grow within the ms
        _last = (millis, random_part)
    return f"{millis:011x}{random_part:05x}"
