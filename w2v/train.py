"""``python -m w2v.train``: corpus in, vectors out.

The only module that knows Hydra. :func:`train` is a plain function of a config (a
:class:`~w2v.config.Config` or the ``DictConfig`` Hydra composes) and an output folder,
returning the run's metrics, so tests and notebooks call it without a command line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .config import parse_device, register_configs, validate
from .corpus import Tokenizer, load_corpus, resolve_corpus
from .model import SkipGramNS
from .trainer import Trainer, TrainingDiverged
from .vocab import Vocab


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks the GPU when there is one; ``cuda`` without one is a user error."""
    spec = parse_device(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={spec} but no CUDA GPU is available; use train.device=cpu or auto")
        index = int(spec[5:]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"train.device={spec} but only {torch.cuda.device_count()} GPU(s) exist; use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    return torch.device(spec)


def _plain(cfg) -> Dict[str, Any]:
    try:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(OmegaConf.structured(cfg) if not hasattr(cfg, "_metadata") else cfg, resolve=True)
    except Exception:  # a plain dataclass without omegaconf
        from dataclasses import asdict

        return asdict(cfg)


def _data_file(path: Optional[str]) -> Optional[Path]:
    """An evaluation file given relative to the working directory or the project root."""
    if not path:
        return None
    try:
        return resolve_corpus(path)[0]
    except FileNotFoundError:
        raise FileNotFoundError(f"evaluation file not found: {path}; fix the eval.* path or set it to null")


class _Monitor:
    """tqdm bar and TensorBoard scalars fed by the trainer's progress callback."""

    def __init__(self, total_words: int, epoch_words: int, writer, show: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_words, unit="w", unit_scale=True, dynamic_ncols=True, disable=not show, mininterval=0.5)
        self.writer, self.epoch_words = writer, epoch_words
        self.last = (time.perf_counter(), 0)

    def for_epoch(self, epoch: int):
        base = epoch * self.epoch_words

        def report(words: int, stats, loss: float) -> None:
            done = base + words
            now = time.perf_counter()
            t0, w0 = self.last
            rate = (done - w0) / max(now - t0, 1e-9)
            self.last = (now, done)
            lr = max(s.lr for s in stats)
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.5f}", epoch=epoch + 1, refresh=False)
            self.writer.add_scalar("train/loss", loss, done)
            self.writer.add_scalar("train/lr", lr, done)
            self.writer.add_scalar("train/words_per_sec", rate, done)

        return report

    def close(self) -> None:
        self.bar.close()


def train(cfg, output_dir: str | Path = ".") -> Dict[str, Any]:
    """Run the whole pipeline and write the outputs into ``output_dir``.

    Writes ``vocab.txt``, ``vectors.bin``/``vectors.txt`` (per ``export.formats``),
    ``checkpoint.pt``, ``metrics.json`` and TensorBoard events under ``tb/``.

    Returns:
        metrics: words/s, final loss, evaluation scores, vocabulary size...
    """
    from .evaluate import evaluate_word_analogies, evaluate_word_pairs
    from .vectors import WordVectors

    validate(cfg)
    logging.getLogger("w2v.evaluate").setLevel(logging.WARNING)  # the run prints its own summary
    device = resolve_device(cfg.train.device)
    analogies, similarity = _data_file(cfg.eval.analogies), _data_file(cfg.eval.similarity)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.train.seed)

    tokenizer = Tokenizer(cfg.data.token_pattern, cfg.data.lowercase)
    started = time.perf_counter()
    corpus = load_corpus(cfg.data.corpus, tokenizer, cache=cfg.data.cache, cache_dir=cfg.data.cache_dir)
    if corpus.bad_bytes:
        print(f"warning: {corpus.bad_bytes} bytes of the corpus were not valid UTF-8 and were read as U+FFFD", file=sys.stderr)
    vocab = Vocab.from_counts(zip(corpus.types, corpus.counts.tolist()), cfg.data.min_count, cfg.data.max_vocab_size)
    if cfg.model.num_shards > len(vocab):
        raise ValueError(
            f"model.num_shards={cfg.model.num_shards} is more than the {len(vocab)} vocabulary rows; "
            "use fewer shards or a lower data.min_count"
        )
    print(
        f"corpus: {len(corpus):,} tokens, {len(corpus.types):,} types; vocabulary: {len(vocab):,} words "
        f"(min_count={cfg.data.min_count}, <unk> absorbs {vocab.counts[0]:,} tokens); "
        f"device: {device}; prepared in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )

    model = SkipGramNS(len(vocab), cfg.model.dim, cfg.model.num_shards, cfg.model.partition_strategy, device=device)
    model.reset_parameters(torch.Generator().manual_seed(cfg.train.seed))
    trainer = Trainer(model, corpus.tokens, vocab.encode(corpus.types), vocab.counts, cfg.train, device)

    from torch.utils.tensorboard import SummaryWriter

    vocab.save(out / "vocab.txt")
    writer = SummaryWriter(str(out / "tb"))
    monitor = _Monitor(trainer.total_words, len(corpus), writer, cfg.train.progress)
    metrics: Dict[str, Any] = {"vocab_size": len(vocab), "corpus_tokens": len(corpus), "device": str(device)}

    def vectors() -> WordVectors:
        return WordVectors(vocab.index_to_key, model.input.weight.detach().cpu().numpy())

    warned: list = []

    def evaluate(wv: WordVectors, step: int) -> Dict[str, float]:
        scores = {}
        try:  # a corpus that shares no words with an evaluation set still trains
            if analogies is not None:
                score, _ = evaluate_word_analogies(wv, analogies, restrict_vocab=cfg.eval.restrict_vocab)
                scores["analogy"] = float(score)
            if similarity is not None:
                _, spearman, oov = evaluate_word_pairs(wv, similarity)
                scores["ws353_spearman"] = float(spearman[0])
                scores["ws353_oov"] = float(oov)
        except ValueError as e:
            if not warned:
                print(f"warning: evaluation skipped: {e}", file=sys.stderr)
                warned.append(True)
        for name, value in scores.items():
            writer.add_scalar(f"eval/{name}", value, step)
        return scores

    def probes(wv: WordVectors, step: int) -> str:
        lines = []
        for word in cfg.eval.probe_words:
            if word in wv:
                near = ", ".join(f"{w} {s:.2f}" for w, s in wv.most_similar(word, topn=cfg.eval.topn))
                lines.append(f"{word}: {near}")
        text = "\n".join(lines)
        if text:
            writer.add_text("neighbours", text.replace("\n", "  \n"), step)
        return text

    def projector(wv: WordVectors, step: int) -> None:
        if cfg.eval.projector_words > 0:
            n = min(cfg.eval.projector_words, len(wv))
            writer.add_embedding(torch.from_numpy(wv.vectors[:n]), metadata=wv.index_to_key[:n], global_step=step, tag="input")

    def on_epoch_end(epoch: int, result) -> None:
        step = (epoch + 1) * len(corpus)
        if not cfg.eval.every_epoch or epoch + 1 == cfg.train.epochs:
            return
        wv = vectors()
        scores = evaluate(wv, step)
        probes(wv, step)
        projector(wv, step)
        monitor.bar.write(
            f"epoch {epoch + 1}: loss {result.loss:.4f}, {result.words_per_sec:,.0f} words/s"
            + "".join(f", {k} {v:.4f}" for k, v in scores.items())
        )

    try:
        result = trainer.fit(on_epoch_end=on_epoch_end, progress=monitor.for_epoch)
    finally:
        monitor.close()

    wv = vectors()
    final_step = cfg.train.epochs * len(corpus)
    metrics.update(
        words_per_sec=result.words_per_sec,
        train_seconds=result.seconds,
        loss=result.loss,
        epoch_losses=result.epoch_losses,
    )
    metrics.update(evaluate(wv, final_step))
    neighbours = probes(wv, final_step)
    projector(wv, final_step)
    writer.close()

    for fmt in cfg.export.formats:
        if fmt in ("bin", "txt"):
            wv.save_word2vec_format(out / f"vectors.{fmt}", binary=fmt == "bin")
        else:
            wv.save(out / f"vectors.{fmt}")
    if cfg.export.checkpoint:
        state = {"epoch": cfg.train.epochs, "words": result.words, "finished": True}
        save_checkpoint(out / "checkpoint.pt", model, vocab, _plain(cfg), state)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    print(
        f"trained {result.words:,} words in {result.seconds:.1f}s ({result.words_per_sec:,.0f} words/s), final loss {result.loss:.4f}"
        + "".join(f", {k} {metrics[k]:.4f}" for k in ("analogy", "ws353_spearman") if k in metrics)
    )
    if neighbours:
        print("nearest neighbours:\n" + neighbours)
    print(f"outputs in {out}")
    return metrics


USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, TrainingDiverged)


def main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    register_configs()

    @hydra.main(version_base="1.3", config_path="../conf", config_name="config")
    def run(cfg) -> Optional[float]:
        try:
            metrics = train(cfg, HydraConfig.get().runtime.output_dir)
        except USER_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)
        return metrics.get("analogy")  # what a sweeper would optimise

    run()


if __name__ == "__main__":
    main()
