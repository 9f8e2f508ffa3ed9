"""``python -m w2v``: what the package offers, and how to start."""

import sys

from . import __version__

USAGE = f"""w2v {__version__}: word2vec skip-gram with negative sampling on PyTorch.

Commands (each also runs as python -m w2v.<name>):
  w2v-train      train vectors; Hydra overrides, e.g. w2v-train model.dim=300 train.epochs=3
                 (no arguments: the bundled 2M-word corpus; --help lists the keys)
  w2v-query      nearest words and analogies: w2v-query vectors.bin --word king
  w2v-evaluate   analogy accuracy and WordSim-353 correlation: w2v-evaluate vectors.bin

Library: w2v.vectors.WordVectors (load, most_similar), w2v.train.train(config, folder).
"""


def main() -> int:
    sys.stdout.write(USAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
