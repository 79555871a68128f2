"""Notebook 10: its tokenizer gives the ids of tiktoken built from its own merges on any string, decode
undoes encode, special tokens work as tiktoken's, training makes a most frequent pair each time, every
check passes on the notebook's own code; and without tiktoken one line. (The race of characters against
BPE moved to notebook 10b: tests/test_10b_tokens_or_characters.py.)"""
import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notebook_code import NOTEBOOKS, ROOT, load
from script_runner import run_script, smoke_env

NB = "10_tokenizer"
TEXT = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
TRAIN, VAL = TEXT[:int(0.9 * len(TEXT))], TEXT[int(0.9 * len(TEXT)):]
nb = load(NB, device="cpu", train_text=TRAIN, val_text=VAL)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@functools.lru_cache(maxsize=None)
def trained(vocab_size, pattern="GPT4_SPLIT_PATTERN"):
    """The notebook's RegexTokenizer trained on the training split, with <|endoftext|> registered."""
    tokenizer = nb["RegexTokenizer"](nb[pattern])
    tokenizer.train(TRAIN, vocab_size)
    tokenizer.register_special_tokens({"<|endoftext|>": vocab_size})
    return tokenizer


@functools.lru_cache(maxsize=None)
def twin(vocab_size, pattern="GPT4_SPLIT_PATTERN"):
    tokenizer = trained(vocab_size, pattern)
    return tiktoken_encoding(tokenizer)


def tiktoken_encoding(tokenizer):
    return nb["tiktoken"].Encoding(name="test", pat_str=tokenizer.pattern, mergeable_ranks=nb["mergeable_ranks"](tokenizer),
                                   special_tokens=tokenizer.special_tokens)


# Shakespeare's words and odd characters, so that the strings drawn hit many merges and chunk boundaries.
PIECES = st.sampled_from(sorted(set(VAL[:20_000].split(" "))) + [" ", "  ", "\n", "\n\n", "'s", "'LL", "123", "4567", "é", "👋", "\r\n", "\t"])
SHAKESPEAREAN = st.lists(PIECES, max_size=40).map(" ".join)


@PROPERTY
@given(st.one_of(st.text(max_size=200), SHAKESPEAREAN))
def test_the_same_ids_as_tiktoken_on_any_string_and_decode_undoes_encode(s):
    for vocab_size in (512, 2048):
        ids = trained(vocab_size).encode(s)
        assert ids == twin(vocab_size).encode_ordinary(s)
        assert trained(vocab_size).decode(ids) == s


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=100), SHAKESPEAREAN))
def test_the_gpt2_pattern_gives_tiktokens_ids_too(s):
    assert trained(600, "GPT2_SPLIT_PATTERN").encode(s) == twin(600, "GPT2_SPLIT_PATTERN").encode_ordinary(s)


@PROPERTY
@given(st.lists(st.one_of(st.text(max_size=30), SHAKESPEAREAN, st.just("<|endoftext|>")), max_size=6).map("".join))
def test_special_tokens_as_tiktoken_has_them(s):
    tokenizer, enc = trained(2048), twin(2048)
    ids = tokenizer.encode(s, allowed_special="all")
    assert ids == enc.encode(s, allowed_special="all") and ids.count(2048) == s.count("<|endoftext|>")
    assert tokenizer.decode(ids) == s
    assert tokenizer.encode(s, allowed_special="none") == enc.encode_ordinary(s)
    if "<|endoftext|>" in s:
        with pytest.raises(ValueError):
            tokenizer.encode(s)
        with pytest.raises(ValueError):
            enc.encode(s)


def test_the_same_ids_as_tiktoken_on_the_validation_split_and_the_whole_text():
    for vocab_size in (512, 2048):
        assert trained(vocab_size).encode(VAL) == twin(vocab_size).encode(VAL)
    assert trained(2048).encode(TEXT) == twin(2048).encode(TEXT)


def test_the_smaller_vocabulary_is_a_prefix_of_the_larger():
    assert list(trained(2048).merges.items())[:256] == list(trained(512).merges.items())
    assert len(trained(2048).merges) == 2048 - 256 and len(set(trained(2048).vocab.values())) == 2048


def test_the_first_merges_on_the_whole_split_are_most_frequent_pairs():
    """The fast training (unique chunks, counts updated) against counting everything again, for 40 merges."""
    first = nb["RegexTokenizer"]()
    first.train(TRAIN, 256 + 40)
    assert list(first.merges.items()) == list(trained(2048).merges.items())[:40]
    nb["replay"](first, TRAIN, "RegexTokenizer")  # raises CheckFailed if one is not a most frequent pair


def test_every_check_passes_on_the_notebooks_own_code():
    basic = nb["BasicTokenizer"]()
    basic.train(TRAIN[:20_000], 256 + 12)
    results = [nb["check_get_stats"](nb["get_stats"]), nb["check_merge"](nb["merge"]), nb["check_training"](nb["BasicTokenizer"]),
               nb["check_encode_decode"](basic), nb["check_training"](nb["RegexTokenizer"]),
               nb["check_encode_decode"](trained(2048)), nb["check_special_tokens"](trained(2048)),
               nb["check_mergeable_ranks"](nb["mergeable_ranks"], trained(2048))]
    assert all(": passed (" in r for r in results), results


def test_the_checks_fail_on_a_tokenizer_that_is_not_bpe():
    """A tokenizer of whole words and bytes, with a vocab but no BPE behind it: the oracle check must fail."""
    class Words(nb["RegexTokenizer"]):
        def encode(self, text, allowed_special="none_raise"):
            return list(text.encode("utf-8"))
    fake = Words()
    fake.train(TRAIN[:20_000], 256 + 60)
    with pytest.raises(AssertionError, match="make the merges in training order"):
        nb["check_encode_decode"](fake)


def test_without_tiktoken_the_script_says_what_to_do_in_one_line(tmp_path):
    wrapper = tmp_path / "no_tiktoken.py"  # runs the notebook's script as if tiktoken were not installed
    wrapper.write_text(f"import runpy, sys\nsys.modules['tiktoken'] = None\nrunpy.run_path({str(NOTEBOOKS / f'{NB}.py')!r}, "
                       "run_name='__main__')\n")
    result = run_script(wrapper, cwd=ROOT, env=smoke_env(), timeout=120)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "error: this notebook needs tiktoken and regex: pip install tiktoken regex (neither downloads anything here)"]
