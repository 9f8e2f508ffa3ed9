"""``python -m w2v.train`` and ``w2v-train``: Hydra's command line over :func:`w2v.pipeline.train`.

The only module that knows Hydra. The configuration ships inside the package
(``w2v/conf``); the command line's overrides are checked by :mod:`w2v.overrides` before
Hydra runs, and every failure ends as one line on stderr with its exit status: 2 for a
user's mistake, 130 or 143 when SIGINT or SIGTERM stopped the run (training stops at the
next chunk boundary after saving a checkpoint; a second signal aborts at once), 3 when
another process of the run failed. ``train.resume`` continues from a checkpoint file or a
run folder, exactly where it stopped; on the command line, in that run folder. A run that
fails before training leaves no folder behind.

Torch and the pipeline are imported once Hydra has composed the config, so that a corpus
not yet cached is tokenized meanwhile on another core (:mod:`w2v.pretokenize`).
``from w2v.train import train`` still hands out :func:`w2v.pipeline.train`.

What the run prints also goes to the ``w2v.train`` logger, which the command line keeps in
the run folder's ``train.log``.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from . import runlock
from .config import register_configs
from .config_rules import validate
from .monitor import say as _say

if TYPE_CHECKING:
    from .trainer import TrainingInterrupted

log = logging.getLogger("w2v.train")  # by name: run as ``python -m``, __name__ is __main__


def __getattr__(name: str):
    if name == "train":  # the plain function, where it was before the command line had a module of its own
        from .pipeline import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Another process of the run failed: one line, and the run's exit status says so.
PEER_FAILURE_EXIT = 3


class _Terminated(BaseException):
    """SIGTERM outside training (while tokenizing, exporting...): unwind, cleaning up."""


def _terminate(signum, frame) -> None:
    raise _Terminated()


def _discard_if_unused(folder: Path, parents: bool) -> None:
    """Remove a run folder that holds only what Hydra wrote before the run (``.hydra``, the log) and its lock.

    A run that fails before training so leaves nothing behind; a folder with anything of
    the run's own (TensorBoard events, checkpoints) stays, its ``train.log`` saying why the
    run stopped. With ``parents`` (Hydra's own ``outputs/DATE/TIME``), the empty folders
    above it inside the working directory go too.
    """
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    if not all(name in (".hydra", runlock.NAME) or name.endswith(".log") for name in entries):
        return
    shutil.rmtree(folder, ignore_errors=True)
    here = Path.cwd()
    for parent in Path(folder).absolute().parents if parents else ():
        if parent == here or here not in parent.parents:
            break
        try:
            parent.rmdir()
        except OSError:  # not empty
            break


def _stop(status: int, line: Optional[str]) -> None:
    """End a failed run with ``status``: ``line`` on stderr and in the log; an unused folder goes."""
    from hydra.core.hydra_config import HydraConfig

    if line is not None:
        _say(line, err=True, level=logging.ERROR)
    hydra = HydraConfig.get()
    chosen = any(o.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in hydra.overrides.hydra)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 owns the folder
        _discard_if_unused(Path(hydra.runtime.output_dir), parents=not chosen)
    sys.exit(status)


def _one_line(e: BaseException) -> str:
    return "error: " + " ".join(str(e).split())


def _saved(stop: TrainingInterrupted, world: int) -> str:
    """What a stop saved, and how to continue from it."""
    if stop.checkpoint is None:
        then = f"continue from the last one with train.resume={stop.last}" if stop.last else "start again"
        return f"no checkpoint could be written ({stop.unsaved}); free space, then {then}"
    # Over several processes every rank saved its own file; the run folder names them all.
    where = stop.checkpoint if world == 1 else Path(stop.checkpoint).parent.parent
    return f"checkpoint saved to {stop.checkpoint}; continue with train.resume={where}"


def _valid(cfg) -> bool:
    """Whether every key of ``cfg`` holds a value it may (the run says which does not, when it starts)."""
    try:
        validate(cfg)
    except ValueError:
        return False
    return True


def _compose_once(argv) -> None:
    """Let Hydra compose the config once per command, not twice.

    Hydra 1.3 (``hydra-core<1.4``, as pinned) composes the whole config a first time only to
    read ``hydra.mode`` (``Hydra.get_mode``), ~0.1 s of every command. No
    config of ours sets it, so unless an override names it, the answer is "unset": the
    command line's ``-m`` alone decides, as Hydra then does.
    """
    from hydra._internal.hydra import Hydra

    if not any(a.lstrip("+~").startswith("hydra.mode=") for a in argv):
        Hydra.get_mode = lambda self, config_name, overrides: None


def main() -> None:
    """``w2v-train`` and ``python -m w2v.train``: Hydra's command line over :func:`train`."""
    # numpy's OpenBLAS starts a thread per core when numpy is imported, and each spins for a
    # while after every call: at startup and after the evaluation's few matrix-vector products
    # it took ~0.2 s of CPU from the run's own threads on 2 cores. The run's large products go
    # through torch; numpy's are small. Set before this command imports numpy (below, not at
    # the module's top: importing w2v.train from a script changes nothing); a value given wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import hydra
    from . import pretokenize
    from hydra.core.hydra_config import HydraConfig

    from .exiting import exit_now
    from .overrides import check_overrides, resume_in_place

    register_configs()
    _compose_once(sys.argv[1:])
    try:  # Hydra's own reports of a bad override are many lines and exit status 1
        given = sys.argv[1:]
        check_overrides(given)
        sys.argv[1:] = resume_in_place(given)
        carried = [a for a in sys.argv[1 + len(given):] if not a.startswith("hydra.")]
        if carried:  # the resumed run's own settings, which the command did not give again
            check_overrides(carried)
            if int(os.environ.get("RANK", "0")) == 0:
                print(f"resuming with the run's own settings: {' '.join(carried)} (settings given replace them)",
                      file=sys.stderr)
    except ValueError as e:
        print(_one_line(e), file=sys.stderr)
        sys.exit(2)

    # The package's own conf/, by its full path: found the same way as python -m w2v.train
    # and as the installed w2v-train (for which Hydra would look for a module w2v.conf).
    @hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="config")
    def run(cfg) -> Optional[float]:
        out = Path(HydraConfig.get().runtime.output_dir)
        signal.signal(signal.SIGTERM, _terminate)
        # Before torch is imported: on another core meanwhile; the run waits for it when it reads the corpus.
        tokenizing = pretokenize.start(cfg.data) if _valid(cfg) else None
        # Torch (~1 s) and Hydra make ~10^6 objects that live as long as the command and no
        # garbage: no collection while they are made, and none walks them after (gc.freeze),
        # where full passes took ~0.3 s of every run.
        gc.disable()
        try:
            from . import parallel
            from .checkpoint import FINAL
            from .pipeline import USER_ERRORS, train
            from .stopping import FinishingInterrupted
            from .trainer import TrainingInterrupted
        finally:
            gc.freeze()
            gc.enable()
        try:
            metrics = train(cfg, out)
        except USER_ERRORS as e:
            _stop(2, _one_line(e))
        except parallel.PeerFailure as e:
            _stop(PEER_FAILURE_EXIT, _one_line(e))
        except TrainingInterrupted as e:
            by = signal.Signals(e.signum).name if e.signum else "request"
            rank, world = parallel.rank_and_size()
            line = f"stopped by {by} at epoch {e.state.epoch + 1}, {e.state.words:,} words; {_saved(e, world)}"
            _stop(128 + e.signum, line if rank == 0 else None)
        except FinishingInterrupted as e:
            line = None
            if e.checkpoint:  # rank 0: the others write nothing after training
                folder = Path(e.checkpoint).parent if Path(e.checkpoint).name == FINAL else e.checkpoint
                line = (
                    f"stopped by {signal.Signals(e.signum).name} while {e.doing}, after training ended; the trained "
                    f"tables are saved in {e.checkpoint}; finish with train.resume={folder} (training is skipped: "
                    "it only evaluates and exports)"
                )
            _stop(128 + e.signum, line)
        except KeyboardInterrupt:
            _stop(130, "error: interrupted")
        except _Terminated:
            _stop(128 + signal.SIGTERM, "error: terminated")
        except BaseException:
            log.exception("the run failed")  # a bug: the traceback goes to stderr and to train.log
            raise
        finally:
            if tokenizing is not None:
                tokenizing.stop()
        return metrics.get("analogy")  # what a sweeper would optimise

    run()
    exit_now(0)  # every run of the command (all of a sweep's) is done and its files closed


if __name__ == "__main__":
    main()
