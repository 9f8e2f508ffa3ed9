"""How many threads the CPU kernel runs the next chunk on, from the speed chunks measure.

The kernel's result does not depend on its thread count, so the count can follow the
machine without changing a single bit of the run. More threads are not always faster: the
kernel's threads hand each other rows three times a batch, and where moving a cache line
between two cores is slow (cores on different dies or sockets, or virtual CPUs that the
host placed far apart for a while) two threads can be slower than one. Measured on a
2-core virtual machine: while a core-to-core round trip took 50-120 ns, 2 threads trained
1.45x as fast as 1; in stretches where it took 300-450 ns, 2 threads were 1.7x *slower*
than 1.

:class:`TeamSize` starts with every thread, measures each chunk's pairs per second, and
now and then runs a chunk on the next smaller (or larger) team to compare; it keeps
whichever is faster by :data:`MARGIN`. The comparisons are spaced further apart (up to 512
chunks, :data:`SPACING`) while they confirm the choice, and one comes at once when a chunk
runs much slower than its team's usual speed (:data:`SLOWDOWN`), so a slow stretch is met
within a few chunks and a fast machine spends a chunk in 64 to 512 on the slower team.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Deque, Dict, List, Optional, Tuple

FIRST = 2  # chunks on the first team before the first comparison (the first chunk warms the caches)
PROBE = 1  # chunks a comparison runs on the other team
RECENT = 2  # the current team's last chunks it is compared with
# Chunks between two comparisons, doubling from the first number to the second while they
# confirm the choice: on every thread asked for (a slowdown brings one forward anyway), and
# on fewer (a slow stretch ends without a sign, so look sooner).
SPACING = (64, 512)
SPACING_FEWER = (16, 64)
MARGIN = 1.1  # another team must be this much faster to be taken
SLOWDOWN = 0.6  # a chunk slower than this share of its team's usual speed brings the next comparison forward
SMOOTHING = 0.3  # weight of the newest chunk in a team's usual speed


def team_sizes(most: int) -> List[int]:
    """The team sizes tried for ``most`` threads, largest first: halving down to 1.

    >>> team_sizes(8), team_sizes(3), team_sizes(1)
    ([8, 4, 2, 1], [3, 2, 1], [1])
    """
    sizes = [max(1, most)]
    while sizes[-1] > 1:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class TeamSize:
    """Chooses the kernel's thread count chunk by chunk.

    A comparison sets the :data:`PROBE` chunk(s) run on the other team against the last
    :data:`RECENT` chunks of the current one, so both are measured in the same second.

    Args:
        most: the threads asked for (``train.workers``).
        adapt: ``False`` keeps ``most`` for every chunk (``train.adapt_workers=false``).

    Call :meth:`next` before a chunk and :meth:`record` after it.
    """

    def __init__(self, most: int, adapt: bool = True) -> None:
        self.sizes = team_sizes(most) if adapt else [max(1, most)]
        self.current = self.sizes[0]
        self.chunks: Counter = Counter()  # team size -> chunks run on it
        self.changes = 0
        self._usual: Optional[float] = None  # the current team's smoothed pairs per second
        self._recent: Deque[Tuple[int, float]] = deque(maxlen=RECENT)  # its last chunks: (pairs, seconds)
        self._interval = FIRST
        self._until = FIRST  # chunks on the current team before the next comparison
        self._probe: Optional[int] = None  # the team being compared
        self._probed: List[Tuple[int, float]] = []
        self._up = False  # which neighbour the next comparison tries

    def next(self) -> int:
        """The thread count for the next chunk."""
        if self._probe is None and self._until <= 0 and len(self.sizes) > 1:
            self._probe, self._probed = self._neighbour(), []
        return self._probe if self._probe is not None else self.current

    def record(self, size: int, pairs: int, seconds: float) -> None:
        """The chunk run on ``size`` threads trained ``pairs`` pairs in ``seconds``."""
        self.chunks[size] += 1
        if pairs <= 0 or seconds <= 0 or len(self.sizes) == 1:
            return
        if size == self._probe:
            self._probed.append((pairs, seconds))
            if len(self._probed) >= PROBE:
                self._compare()
            return
        if size != self.current:
            return
        rate = pairs / seconds
        usual = self._usual
        self._usual = rate if usual is None else (1 - SMOOTHING) * usual + SMOOTHING * rate
        self._recent.append((pairs, seconds))
        self._until -= 1
        if usual is not None and rate < SLOWDOWN * usual and self._until > RECENT:
            # A sudden slowdown: compare with fewer threads once RECENT more chunks (after it:
            # a passing hiccup is not compared) say how fast this team is now.
            self._until, self._up = RECENT, False

    def _neighbour(self) -> int:
        """The team the next comparison runs: one step smaller or larger, alternately where both exist."""
        i = self.sizes.index(self.current)
        smaller = self.sizes[i + 1] if i + 1 < len(self.sizes) else None
        larger = self.sizes[i - 1] if i > 0 else None
        if larger is not None and (self._up or smaller is None):
            self._up = False
            return larger
        self._up = larger is not None
        return smaller  # type: ignore[return-value]

    def _compare(self) -> None:
        size, self._probe = self._probe, None
        if _rate(self._probed) > MARGIN * _rate(self._recent):
            self.current, self.changes = size, self.changes + 1
            self._usual = None
            self._recent.clear()
            self._recent.extend(self._probed)
            self._interval = self._spacing()[0]
        else:
            first, most = self._spacing()
            self._interval = min(max(2 * self._interval, first), most)
        self._until = self._interval

    def _spacing(self) -> Tuple[int, int]:
        return SPACING if self.current == self.sizes[0] else SPACING_FEWER

    def summary(self) -> Dict[str, int]:
        """Chunks run on each thread count, largest count first (keys are strings, for JSON)."""
        return {str(n): self.chunks[n] for n in sorted(self.chunks, reverse=True)}


def _rate(chunks) -> float:
    """Pairs per second over ``(pairs, seconds)`` chunks."""
    seconds = sum(s for _, s in chunks)
    return sum(p for p, _ in chunks) / seconds if seconds > 0 else 0.0
