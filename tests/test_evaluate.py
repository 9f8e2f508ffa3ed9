"""Analogy and word-pair evaluation: gensim's numbers, from our batched code; and the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

import w2v.evaluate as ev
from w2v.vectors import WordVectors

gensim_kv = pytest.importorskip("gensim.models.keyedvectors")

DATA = Path(__file__).resolve().parent.parent / "w2v" / "data"
QUESTIONS = DATA / "questions-words.txt"
WORDSIM = DATA / "wordsim353.tsv"


def structured_vectors(dim=32, seed=0, keep=0.85, noise=1.6) -> WordVectors:
    """Random vectors over most words of the two test sets, with structure to find.

    Within each analogy section, the second word of a pair sits near the first plus a
    section offset, so 3CosAdd gets a fair share right. WordSim pairs lean together in
    proportion to their human score. Extra spellings (``ATHENS`` before ``Athens``,
    ``athens`` after) test the case handling; ``dup_*`` words copy vectors exactly, so
    tied scores test the tie path. ``<unk>`` is id 0, as after training.
    """
    rng = np.random.default_rng(seed)
    sections, name = {}, None
    for line in QUESTIONS.read_text().splitlines():
        if line.startswith(":"):
            name = line[1:].strip()
            sections[name] = []
        else:
            sections[name].append(line.split())
    triples = [line.split("\t") for line in WORDSIM.read_text().splitlines() if not line.startswith("#")]
    seen = dict.fromkeys([w for qs in sections.values() for q in qs for w in q] + [w for t in triples for w in t[:2]])
    words = [w for w in seen if rng.random() < keep]
    rng.shuffle(words)
    vec = {}
    for questions in sections.values():
        offset = rng.standard_normal(dim)
        for q in questions:
            for x, y in ((q[0], q[1]), (q[2], q[3])):
                if x in vec and y not in vec:
                    vec[y] = vec[x] + offset + noise * rng.standard_normal(dim)
                elif y in vec and x not in vec:
                    vec[x] = vec[y] - offset + noise * rng.standard_normal(dim)
                elif x not in vec:
                    vec[x] = 2 * rng.standard_normal(dim)
                    vec[y] = vec[x] + offset + noise * rng.standard_normal(dim)
    for a, b, score in triples:
        vec.setdefault(a, 2 * rng.standard_normal(dim))
        vec.setdefault(b, float(score) / 5 * vec[a] + 2 * rng.standard_normal(dim))
    early = [w.upper() if w[0].isupper() else w.capitalize() for w in words[:60]]
    late = [w.lower() if w[0].isupper() else w.upper() for w in words[60:160]]
    dups = [f"dup_{w}" for w in words[200:260]]
    vocab = list(dict.fromkeys(["<unk>"] + early + words + late + dups + [f"filler{i}" for i in range(200)]))
    table = [vec[w[4:]] if w.startswith("dup_") else vec.get(w, 2 * rng.standard_normal(dim)) for w in vocab]
    return WordVectors(vocab, np.asarray(table, dtype=np.float32))


@pytest.fixture(scope="module")
def vectors():
    wv = structured_vectors()
    kv = gensim_kv.KeyedVectors(wv.vector_size)
    kv.add_vectors(wv.index_to_key, wv.vectors)
    return wv, kv


OPTIONS = [{}, {"restrict_vocab": 700}, {"case_insensitive": False}, {"dummy4unknown": True}]


@pytest.mark.parametrize("search", ["word products", "query products"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_analogies_equal_gensims(vectors, options, search, monkeypatch):
    wv, kv = vectors
    assert ev.worth_it(np.array([[1, 2, 3]] * 1000), wv.vector_size)  # these questions take w2v.cosadd's way
    monkeypatch.setattr(ev, "worth_it", lambda abc, dim: search == "word products")
    rescored = []
    original = ev._gensim_candidates
    monkeypatch.setattr(ev, "_gensim_candidates", lambda *a: rescored.append(1) or original(*a))
    score, sections = ev.evaluate_word_analogies(wv, QUESTIONS, **options)
    want_score, want = kv.evaluate_word_analogies(str(QUESTIONS), **options)
    assert [s["section"] for s in sections] == [s["section"] for s in want]
    for got, expected in zip(sections, want):
        assert got["correct"] == expected["correct"], got["section"]
        assert got["incorrect"] == expected["incorrect"], got["section"]
    assert score == want_score
    assert sections[-1]["section"] == "Total accuracy"
    assert 0.2 < score < 0.9  # the structure makes the task neither trivial nor hopeless
    if "restrict_vocab" not in options:
        assert rescored  # the dup_* ties went through gensim's arithmetic


def test_analogy_counts(vectors):
    wv, _ = vectors
    _, sections = ev.evaluate_word_analogies(wv, QUESTIONS)
    _, dummy = ev.evaluate_word_analogies(wv, QUESTIONS, dummy4unknown=True)
    total, total_dummy = sections[-1], dummy[-1]
    assert total["oov"] == total_dummy["oov"] > 0
    n_questions = sum(1 for line in QUESTIONS.read_text().splitlines() if not line.startswith(":"))
    assert len(total["correct"]) + len(total["incorrect"]) + total["oov"] == n_questions
    assert len(total_dummy["correct"]) + len(total_dummy["incorrect"]) == n_questions
    assert total["correct"] == total_dummy["correct"]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_word_pairs_equal_gensims(vectors, options):
    wv, kv = vectors
    pearson, spearman, oov = ev.evaluate_word_pairs(wv, WORDSIM, **options)
    want_p, want_s, want_oov = kv.evaluate_word_pairs(str(WORDSIM), **options)
    assert oov == pytest.approx(want_oov, abs=1e-9) and oov > 0
    assert spearman.statistic == pytest.approx(want_s[0], abs=1e-6)
    assert pearson.statistic == pytest.approx(want_p[0], abs=1e-6)
    assert spearman.pvalue == pytest.approx(want_s[1], rel=1e-4)
    assert pearson.pvalue == pytest.approx(want_p[1], rel=1e-4)
    assert spearman.statistic > 0.2  # the pairs were built to lean together


def test_analogies_known_answers(tmp_path):
    wv = WordVectors(["<unk>", "man", "woman", "king", "queen", "boy", "girl", "Apple"],
                     [[0, 0, 0, 1], [1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0],
                      [1, 0, -1, 0], [1, 1, -1, 0], [-1, 0, 0, 0]])
    path = tmp_path / "q.txt"
    path.write_text(": family\nman woman king queen\nking queen boy girl\nman king woman girl\n"
                    "not four words\n: other\nman woman zebra girl\nMAN WOMAN KING QUEEN\n")
    score, sections = ev.evaluate_word_analogies(wv, path)
    assert [(s["section"], len(s["correct"]), len(s["incorrect"]), s["oov"]) for s in sections] == [
        ("family", 2, 1, 0), ("other", 1, 0, 1), ("Total accuracy", 3, 1, 1)]
    assert score == 0.75
    _, sections = ev.evaluate_word_analogies(wv, path, case_insensitive=False)
    assert sections[1]["oov"] == 2  # MAN... are unknown when case matters


def test_analogy_file_errors(tmp_path, vectors):
    path = tmp_path / "q.txt"
    path.write_text("athens greece baghdad iraq\n")
    with pytest.raises(ValueError, match="q.txt:1: a question before the first ': section' line"):
        ev.evaluate_word_analogies(vectors[0], path)
    with pytest.raises(FileNotFoundError):
        ev.evaluate_word_analogies(vectors[0], tmp_path / "missing.txt")


def test_word_pairs_without_any_known_pair(tmp_path, vectors):
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment\nqqqq\tzzzz\t3.0\n")
    with pytest.raises(ValueError, match="no similarity judgements found"):
        ev.evaluate_word_pairs(vectors[0], path)


# --- command line --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory, vectors):
    path = tmp_path_factory.mktemp("vec") / "vectors.bin"
    vectors[0].save(path)
    return path


def test_cli_text(vectors_file, vectors, capsys):
    assert ev.main([str(vectors_file), "--analogies", str(QUESTIONS), "--similarity", str(WORDSIM)]) == 0
    out = capsys.readouterr().out
    score, _ = vectors[1].evaluate_word_analogies(str(QUESTIONS))
    assert "capital-common-countries" in out and "Total accuracy" in out
    assert f"{100 * score:.1f}%" in out.splitlines()[[i for i, l in enumerate(out.splitlines()) if "Total" in l][0]]
    assert "spearman" in out and "pearson" in out


def test_cli_json(vectors_file, vectors, capsys):
    assert ev.main([str(vectors_file), "--analogies", str(QUESTIONS), "--similarity", str(WORDSIM),
                    "--restrict-vocab", "700", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    score, sections = vectors[1].evaluate_word_analogies(str(QUESTIONS), restrict_vocab=700)
    assert report["analogies"]["score"] == score
    total = report["analogies"]["sections"][-1]
    assert total["correct"] == len(sections[-1]["correct"]) and total["seen"] == total["correct"] + total["incorrect"]
    _, spearman, oov = vectors[1].evaluate_word_pairs(str(WORDSIM), restrict_vocab=700)
    assert report["similarity"]["spearman"]["statistic"] == pytest.approx(spearman[0], abs=1e-6)
    assert report["similarity"]["oov_pct"] == pytest.approx(oov)


def test_cli_without_files_uses_the_bundled_sets_and_trainings_restrict_vocab(vectors_file, vectors, capsys):
    assert ev.main([str(vectors_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["analogies"]["path"] == str(QUESTIONS) and report["similarity"]["path"] == str(WORDSIM)
    assert report["analogies"]["restrict_vocab"] == report["similarity"]["restrict_vocab"] == 30000
    score, _ = vectors[1].evaluate_word_analogies(str(QUESTIONS), restrict_vocab=30000)
    assert report["analogies"]["score"] == score


@pytest.mark.parametrize("argv, message", [
    (["missing.bin", "--analogies", str(QUESTIONS)], "missing.bin: no such file"),
    (["{vec}", "--similarity", "nope.tsv"], "nope.tsv: No such file or directory"),
])
def test_cli_user_errors(vectors_file, capsys, argv, message):
    assert ev.main([a.format(vec=vectors_file) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


# --- hostile input: one line, exit 2, never a hang ----------------------------------------

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from w2v import files  # noqa: E402




@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "small.bin"
    WordVectors(["<unk>", "a", "b", "c"], np.eye(4, dtype=np.float32)).save(path)
    return path


def assert_one_line(capsys, message):
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err, captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


@pytest.mark.parametrize("argv, message", [
    (["--analogies", "{q}", "--device", "bogus"], "--device 'bogus' is not a device; use cpu, cuda or cuda:N"),
    (["--analogies", "{q}", "--device", "cuda:99"], "--device 'cuda:99' but "),
    (["--analogies", "{q}", "--restrict-vocab", "-3"], "argument --restrict-vocab: must be a whole number >= 0"),
    (["--analogies", "{q}", "--restrict-vocab", "1e6"], "argument --restrict-vocab: must be a whole number"),
    (["--analogies"], "argument --analogies: expected one argument"),
])
def test_cli_bad_arguments(small_file, capsys, argv, message):
    assert ev.main([str(small_file)] + [a.format(q=QUESTIONS) for a in argv]) == 2
    assert_one_line(capsys, message)


@pytest.mark.parametrize("option", ["--analogies", "--similarity"])
def test_cli_evaluation_file_that_is_a_fifo_or_a_device(small_file, tmp_path, capsys, no_hang, option):
    fifo = tmp_path / "questions.txt"
    os.mkfifo(fifo)
    assert ev.main([str(small_file), option, str(fifo)]) == 2
    assert_one_line(capsys, f"{fifo} is a FIFO, not a regular file")
    assert ev.main([str(small_file), option, "/dev/zero"]) == 2
    assert_one_line(capsys, "/dev/zero is a character device, not a regular file")


@pytest.mark.parametrize("option, content", [("--analogies", b": s\n" + b"a" * 5000), ("--similarity", b"a\tb" * 5000)],
                         ids=["analogies", "similarity"])
def test_cli_evaluation_file_without_newlines(small_file, tmp_path, capsys, monkeypatch, option, content):
    monkeypatch.setattr(files, "MAX_LINE_BYTES", 1024)
    (tmp_path / "eval.txt").write_bytes(content)
    assert ev.main([str(small_file), option, str(tmp_path / "eval.txt")]) == 2
    line = 2 if option == "--analogies" else 1
    assert_one_line(capsys, f"eval.txt:{line}: a line longer than 1,024 bytes")


def test_library_refuses_a_negative_restrict_vocab_and_a_bad_device(small_file):
    wv = WordVectors.load(small_file)
    with pytest.raises(ValueError, match="restrict_vocab must be a whole number >= 0 or None, got -1"):
        ev.evaluate_word_analogies(wv, QUESTIONS, restrict_vocab=-1)
    with pytest.raises(ValueError, match="restrict_vocab must be a whole number >= 0"):
        wv.most_similar("a", restrict_vocab=-2)
    with pytest.raises(ValueError, match="device 'bogus' is not a device"):
        wv.most_similar_batch(["a"], device="bogus")


def test_cli_json_has_no_nan(tmp_path, capsys):
    # Every pair has the same model similarity and the same score: the correlations are NaN.
    WordVectors(["<unk>", "a", "b", "c", "d"], np.ones((5, 3), dtype=np.float32)).save(tmp_path / "v.bin")
    (tmp_path / "pairs.tsv").write_text("a\tb\t5\nc\td\t5\na\tc\t5\n")
    assert ev.main([str(tmp_path / "v.bin"), "--similarity", str(tmp_path / "pairs.tsv"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert report["similarity"]["spearman"] == {"statistic": None, "pvalue": None}


def test_cli_restrict_vocab_zero_means_every_word(vectors_file, capsys):
    assert ev.main([str(vectors_file), "--similarity", str(WORDSIM), "--restrict-vocab", "0", "--json"]) == 0
    every = json.loads(capsys.readouterr().out)["similarity"]
    assert ev.main([str(vectors_file), "--similarity", str(WORDSIM), "--restrict-vocab", "100000000", "--json"]) == 0
    assert every["spearman"] == json.loads(capsys.readouterr().out)["similarity"]["spearman"]


def test_cli_bad_device_from_the_program(small_file):
    r = subprocess.run([sys.executable, "-m", "w2v.evaluate", str(small_file), "--analogies", str(QUESTIONS),
                        "--device", "bogus"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: --device 'bogus' is not a device; use cpu, cuda or cuda:N"]
