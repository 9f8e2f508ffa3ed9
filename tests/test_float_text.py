"""Float tables as %.8e text at numpy speed (w2v.float_text)."""

import numpy as np

from w2v import float_text, formats
from w2v.float_text import scientific

from conftest import compiled_or


way = compiled_or(float_text, "numpy")  # each test that takes it runs in C and with numpy


def _bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def test_text_values_read_back_as_the_same_float32_and_match_printf(way):
    rng = np.random.default_rng(0)
    every = rng.integers(0, 2**32, size=400_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    every = every[np.isfinite(every)]  # random bit patterns: every exponent, denormals, both signs
    powers = np.array([10.0**k for k in range(-45, 39)], dtype=np.float32)
    edges = np.concatenate([
        powers, np.nextafter(powers, np.float32(0)), np.nextafter(powers, np.float32(np.inf)), -powers,
        [0.0, -0.0, 1 - 2**-24, 9.9999999e-1, np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45],
    ]).astype(np.float32)
    values = np.concatenate([every, edges])
    values = values[: len(values) // 50 * 50].reshape(-1, 50)
    text, ends = scientific(values)
    lines = text.decode("ascii").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(values) and ends[-1] == len(text)
    assert [len(line) + 1 for line in lines[:-1]] == np.diff(ends, prepend=0).tolist()
    back = np.array(" ".join(lines).split(), dtype=np.float32).reshape(values.shape)
    np.testing.assert_array_equal(_bits(back), _bits(values))  # -0.0 and denormals included
    assert lines[0].split() == ["%.8e" % v for v in values[0].tolist()]
    printf = "\n".join(" ".join("%.8e" % v for v in row) for row in values.tolist()) + "\n"
    assert text.decode("ascii") == printf


def test_an_empty_row_is_an_empty_line_and_formats_still_hands_out_the_formatter(way):
    text, ends = scientific(np.zeros((2, 0), dtype=np.float32))
    assert text == b"\n\n" and ends.tolist() == [1, 2]
    assert formats.scientific is scientific


def test_the_word2vec_text_file_is_printfs_with_c_or_without(way, tmp_path):
    rng = np.random.default_rng(1)
    table = rng.integers(0, 2**32, size=(3000, 7), dtype=np.uint64).astype(np.uint32).view(np.float32)
    table[~np.isfinite(table)] = -0.0  # every exponent, denormals, both signs
    words = [f"w{i}" if i % 5 else f"naïve·{i}" for i in range(len(table))]  # UTF-8 words of several lengths
    path = tmp_path / "v.txt"
    formats.write_word2vec(path, words, table, binary=False)
    expected = f"{len(table)} 7\n" + "".join(
        w + " " + " ".join("%.8e" % v for v in row) + "\n" for w, row in zip(words, table.tolist())
    )
    assert path.read_text(encoding="utf-8") == expected
    lines = float_text.word2vec_lines([w.encode() for w in words], table)
    assert (lines is None) == (way == "numpy")  # the C lines where C is, scientific's otherwise
