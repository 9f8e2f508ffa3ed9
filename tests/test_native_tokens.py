"""The C tokenizer and word table: Python's tokens and first-seen ids, bit for bit, on any text."""

import numpy as np
import pytest

from w2v import native_tokens
from w2v.corpus import Tokenizer
from w2v.encoder import TypeIds, type_ids
from w2v.native_tokens import NativeTypeIds

pytestmark = pytest.mark.skipif(native_tokens._native() is None, reason="no C compiler here")

# Characters that make tokenizing hard: ASCII of every class (the case-ignorable ' . : ^ ` among
# them), Unicode whitespace, letters whose lowercase is longer, or ASCII, or depends on context
# (final sigma), digits and marks that are not letters, U+FFFD, and a middle dot and a
# right quote (case-ignorable, not ASCII).
TRICKY = (
    "aBzZ09_ '.:^`,-!\"#$%&()*+/;<=>?@[\\]{|}~\t\n\x0b\x0c\r\x1c\x1f\x00\x7f"
    "\x85\xa0\u2028\u3000éÉßΣσςΑΒİıK\u212aǅﬁ\u0301²٣中жЖ\ufffd😀·\u2019"
)


def python_ids(texts, lowercase):
    tokenizer, ids = Tokenizer(lowercase=lowercase), TypeIds(Tokenizer().pattern)
    return [ids.encode(tokenizer.tokenize(t)).tolist() for t in texts], ids.words


def native_ids(texts, lowercase):
    ids = NativeTypeIds.open(Tokenizer(lowercase=lowercase))
    return [ids.encode_text(t).tolist() for t in texts], ids.words


@pytest.mark.parametrize("lowercase", [True, False])
def test_random_text_gets_pythons_tokens_and_ids(lowercase):
    rng = np.random.default_rng(0)
    alphabet = np.array(list(TRICKY))
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 300))) for _ in range(400)]
    texts += ["ΟΔΟΣ'A ΟΔΟΣ.Β ΟΔΟΣ:x ΟΔΟΣ,Α ΟΔΟΣ1Α ΟΔΟΣ", "İstanbul \u212aelvin ǅemal ﬁne naïve", "The THE tHe x²y a_b", ""]
    ids = NativeTypeIds.open(Tokenizer(lowercase=lowercase))
    got = [ids.encode_text(t).tolist() for t in texts], ids.words
    want = python_ids(texts, lowercase)
    assert sum(map(len, want[0])) > 5_000 and len(want[1]) > 1_000  # the text is not all separators
    assert got == want
    counted = np.bincount([i for row in want[0] for i in row], minlength=len(want[1]))
    assert ids.counts().tolist() == counted.tolist()


def test_plain_text_and_tokens_given_as_a_list_share_one_numbering():
    ids = NativeTypeIds.open(Tokenizer())
    assert ids.encode_text("The cat sat. THE CAT!").tolist() == [0, 1, 2, 0, 1]
    assert ids.encode(["cat", "naïve", "The"]).tolist() == [1, 3, 4]  # a list is taken as it is: not lowercased
    assert ids.encode_text("naïve the").tolist() == [3, 0]
    assert ids.words == ["the", "cat", "sat", "naïve", "The"] and len(ids) == 5


def test_long_words_and_a_large_vocabulary():
    words = ["W" + "".join(chr(65 + i // 26**k % 26) for k in range(4)) for i in range(150_000)]  # past every initial size
    long = "Long" * 300  # past the 64-byte buffer of the lowercasing copy
    text = " ".join(words) + f" {long} " + " ".join(reversed(words))
    got = native_ids([text], True)
    assert got == python_ids([text], True)
    assert len(got[1]) == 150_001 and got[1][-1] == long.lower()


def test_other_patterns_are_left_to_python():
    assert NativeTypeIds.open(Tokenizer(r"\S+")) is None
    assert isinstance(type_ids(Tokenizer(r"\S+")), TypeIds)
    assert isinstance(type_ids(Tokenizer()), NativeTypeIds)


def test_without_a_compiler_the_python_table_numbers_the_words(monkeypatch):
    monkeypatch.setattr(native_tokens, "_native", lambda: None)
    assert isinstance(type_ids(Tokenizer()), TypeIds)
