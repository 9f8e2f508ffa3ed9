"""A corpus not yet cached, tokenized in a child process while the command imports torch.

The first run on a corpus tokenizes it (~0.5 s per 5M words) and every run imports torch
(~1 s), each on one core. The command line starts both at once: before torch is imported
it forks a child that fills the token cache (:func:`w2v.token_cache.load_corpus`) and
ends. When the run comes to read the corpus, ``load_corpus`` waits for the child's lock on
the entry if it is still at work, then reads what it published; so the run's own steps
(its checks first of all: a run refused for its settings does not wait) are unchanged.

The child is forked only while this process runs no thread but daemon ones and has no torch
(so no lock or thread pool can be caught mid-way), on Linux, with the cache on, in a run of one
process, and when the cache has no entry for the corpus yet. Whatever it meets (a corpus
that is not text, a full disk) it leaves to the run: it ends, and the run, reading the
corpus itself, reports it as ever. A run that ends first ends the child (:meth:`stop`),
which then removes what it had written.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Optional

from .corpus import Tokenizer
from .encoder import can_fork
from .token_cache import is_cached, load_corpus


class Tokenizing:
    """The child process tokenizing a corpus."""

    def __init__(self, pid: int) -> None:
        self.pid: Optional[int] = pid

    def stop(self) -> Optional[int]:
        """End the child if it still runs, and reap it; its exit status (``None`` if reaped before)."""
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)


def start(data) -> Optional[Tokenizing]:
    """Fork a child that tokenizes ``data.corpus`` into the cache, where that can help; else ``None``.

    Args:
        data: the run's ``data`` config (corpus, token_pattern, lowercase, cache, cache_dir,
            tokenize_workers), already validated.
    """
    if not _can_fork() or not data.cache or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    try:
        tokenizer = Tokenizer(data.token_pattern, data.lowercase)
        if is_cached(data.corpus, tokenizer, data.cache_dir):
            return None
    except (ValueError, OSError):  # no such corpus, a bad pattern: the run says so
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(data, tokenizer)
    return Tokenizing(pid)


def _child(data, tokenizer: Tokenizer) -> None:
    """Tokenize into the cache, then end without running the parent's exit code."""
    code = 1
    try:
        signal.signal(signal.SIGINT, _end)  # Ctrl-C reaches the whole group; the run reports it
        signal.signal(signal.SIGTERM, _end)
        load_corpus(
            data.corpus, tokenizer, cache=True, cache_dir=data.cache_dir,
            warn=lambda text: print(f"warning: {text}", file=sys.stderr, flush=True), workers=data.tokenize_workers,
        )
        code = 0
    except BaseException:  # the run meets it again, and reports it
        pass
    finally:
        os._exit(code)


def _end(signum, frame) -> None:
    raise SystemExit()  # unwinds load_corpus, which removes its unfinished folder and its lock


def _can_fork() -> bool:
    """As the tokenizing workers are forked (:func:`w2v.encoder.can_fork`), and before torch is
    imported (its thread pools a fork would leave half there)."""
    return can_fork() and "torch" not in sys.modules
