"""Notebook 10's mistake hunt: mistakes a learner makes while writing the tokenizer (one edit of the
notebook's own code each), every one met by the check after the piece with the sentence that names it;
and correct variants the checks must pass. `python tests/test_mistakes_10.py` prints what each check says."""
import functools
import sys

import jupytext
import pytest

from notebook_code import NOTEBOOKS, ROOT, load

NB = "10_tokenizer"


@functools.lru_cache(maxsize=1)
def texts():
    text = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    n = int(0.9 * len(text))
    return text[:n], text[n:]


def ns(edits=()):
    train_text, val_text = texts()
    return load(NB, replace=edits, device="cpu", train_text=train_text, val_text=val_text)


def trained(nb, cls, size=256 + 60):
    tokenizer = nb[cls]()
    tokenizer.train(texts()[0][:20_000], size)
    return tokenizer


def with_special(nb):
    tokenizer = trained(nb, "RegexTokenizer")
    tokenizer.register_special_tokens({"<|endoftext|>": 256 + 60})
    return tokenizer


get_stats = lambda nb: nb["check_get_stats"](nb["get_stats"])
merge = lambda nb: nb["check_merge"](nb["merge"])
basic_training = lambda nb: nb["check_training"](nb["BasicTokenizer"])
regex_training = lambda nb: nb["check_training"](nb["RegexTokenizer"])
basic_coding = lambda nb: nb["check_encode_decode"](trained(nb, "BasicTokenizer", 256 + 12))
regex_coding = lambda nb: nb["check_encode_decode"](trained(nb, "RegexTokenizer"))
special = lambda nb: nb["check_special_tokens"](with_special(nb))
unregistered = lambda nb: nb["check_special_tokens"](trained(nb, "RegexTokenizer"))  # the check registers its own
ranks = lambda nb: nb["check_mergeable_ranks"](nb["mergeable_ranks"], trained(nb, "RegexTokenizer"))

PAIRS = "    for pair in zip(ids, ids[1:]):  # every adjacent pair, overlapping ones too\n"
SKIP = "            i += 2  # both tokens of the pair are used up\n"
MOST = "pair = max(stats, key=stats.get)  # the most frequent pair (on a tie, the first one counted)"
BASIC_VOCAB = "            self.vocab[idx] = self.vocab[pair[0]] + self.vocab[pair[1]]\n            if verbose:"
LOWEST = 'pair = min(stats, key=lambda p: self.merges.get(p, float("inf")))  # the lowest merge id'
STOP = "        if pair not in self.merges:\n            break  # no pair left has a merge\n"
JOIN = 'text_bytes = b"".join(self.vocab[idx] for idx in ids)\n    return text_bytes.decode("utf-8", errors="replace")'
TAKE_OUT = ("        for p in zip(ids, ids[1:]):  # take this word's pairs out of the stats...\n            stats[p] -= count\n"
            "            if stats[p] == 0:\n                del stats[p]\n")
SPECIAL = 'special = self.special_tokens if allowed_special == "all" else {}'
RANK_PAIR = "        vocab[idx] = vocab[p0] + vocab[p1]\n"

MISTAKES = {  # name: (the learner's edits as (old, new) pairs, the check, what its sentence must say)
    "get_stats counts pairs without overlaps": ([(PAIRS, "    for pair in zip(ids[::2], ids[1::2]):\n")], get_stats,
                                                "not the count of every adjacent pair (overlapping pairs too"),
    "get_stats ignores the counts it is given": ([("counts = {} if counts is None else counts", "counts = {}")], get_stats,
                                                 "must add this list's pairs into the counts it is given"),
    "get_stats sets a count to 1": ([("counts[pair] = counts.get(pair, 0) + 1", "counts[pair] = 1")], get_stats,
                                    "not the count of every adjacent pair"),
    "merge steps one on after a match (aaa -> two tokens)": ([(SKIP, "            i += 1\n")], merge,
                                                             "merge([97, 97, 97], (97, 97), 256) gives [256, 256, 97], not [256, 97]"),
    "merge drops the last token": ([("    while i < len(ids):\n", "    while i < len(ids) - 1:\n")], merge,
                                   "and the last token must be kept"),
    "merge matches the first token of the pair only": ([("ids[i] == pair[0] and ids[i + 1] == pair[1]", "ids[i] == pair[0]")],
                                                       merge, "replace each occurrence reading from the left"),
    "train takes the least frequent pair": ([(MOST, MOST.replace("max(", "min("))], basic_training,
                                            "each merge must take a most frequent pair (count every adjacent pair)"),
    "train forgets to keep the merged ids": ([("            ids = merge(ids, pair, idx)\n            self.merges",
                                               "            merge(ids, pair, idx)\n            self.merges")], basic_training,
                                             "a pair was merged again"),
    "train joins a token's bytes the wrong way round": ([(BASIC_VOCAB, BASIC_VOCAB.replace("pair[0]] + self.vocab[pair[1]",
                                                                                           "pair[1]] + self.vocab[pair[0]"))],
                                                        basic_training, "not the bytes of its pair"),
    "train numbers the new tokens from 257": ([("        for idx in range(256, vocab_size):\n            stats = get_stats(ids)",
                                                "        for idx in range(257, vocab_size + 1):\n            stats = get_stats(ids)")],
                                              basic_training, "made token 257, not 256"),
    "train makes one merge too many": ([("        for idx in range(256, vocab_size):\n            stats = get_stats(ids)",
                                         "        for idx in range(256, vocab_size + 1):\n            stats = get_stats(ids)")],
                                       basic_training, "vocab_size counts the 256 bytes too"),
    "decode decodes token by token": ([(JOIN, 'return "".join(self.vocab[idx].decode("utf-8", errors="replace") for idx in ids)')],
                                      basic_coding, "it decodes each token on its own"),
    "decode without errors='replace'": ([(JOIN, JOIN.replace(', errors="replace"', ""))], basic_coding,
                                        "decode with errors='replace'"),
    "decode with errors='ignore'": ([(JOIN, JOIN.replace('errors="replace"', 'errors="ignore"'))], basic_coding,
                                    "gives '', not '\ufffd'"),
    "encode takes the most frequent pair that has a merge": ([(LOWEST, "pair = max(stats, key=lambda p: stats[p] if p in "
                                                                       "self.merges else -1)")], regex_coding,
                                                             "make the merges in training order"),
    "encode takes the latest merge first": ([(LOWEST, 'pair = max(stats, key=lambda p: self.merges.get(p, -1))')],
                                            regex_coding, "make the merges in training order"),
    "encode does not stop when no merge applies": ([(STOP, "")], regex_coding, "it must stop when no pair present has a merge"),
    "encode does not split with the pattern": ([("    for chunk in self.compiled_pattern.findall(text):\n",
                                                 "    for chunk in [text]:\n")], regex_coding,
                                               "split the text with self.pattern first"),
    "regex train counts each different chunk once": ([("stats[pair] = stats.get(pair, 0) + counts[w]",
                                                       "stats[pair] = stats.get(pair, 0) + 1")], regex_training,
                                                      "each chunk counted as often as it occurs"),
    "regex train on the whole text, not its chunks": ([("chunks = collections.Counter(self.compiled_pattern.findall(text))",
                                                        "chunks = collections.Counter([text])")], regex_training,
                                                       "within the chunks of self.pattern"),
    "regex train never takes the old pairs out": ([(TAKE_OUT, "")], regex_training, "a merge takes each changed word's old pairs out"),
    "regex train forgets where the new pairs are": ([("            where[p].add(w)\n", "")], regex_training,
                                                    "notes which words hold them"),
    "regex train keeps pairs whose count fell to 0": ([("            if stats[p] == 0:\n                del stats[p]\n", "")],
                                                      regex_training, "a pair at 0 leaves"),
    "special tokens go through the regex": ([(SPECIAL, "special = {}")], special, "the special token was cut up"),
    "special tokens lost by regex.split": ([('regex.split("(" + "|".join(regex.escape(token) for token in special) + ")", text)',
                                             'regex.split("|".join(regex.escape(token) for token in special), text)')],
                                           special, "keep each special token when splitting"),
    "a special token in the text accepted by default": ([('if allowed_special == "none_raise" and any(', 'if False and any(')],
                                                        special, "it must raise ValueError, as tiktoken does"),
    "decode forgets the special tokens": ([('self.vocab[idx] if idx in self.vocab else self.inverse_special_tokens[idx].encode("utf-8")',
                                            "self.vocab[idx]")], special, "a special token's id decodes to its text"),
    "mergeable_ranks joins the halves the wrong way round": ([(RANK_PAIR, "        vocab[idx] = vocab[p1] + vocab[p0]\n")], ranks,
                                                             "the bytes of the pair's first token, then of its second"),
    "mergeable_ranks writes the pair's ids as bytes": ([(RANK_PAIR, "        vocab[idx] = bytes([p0, p1])\n")], ranks,
                                                       "a token's bytes are the bytes of its pair's tokens joined"),
    "mergeable_ranks counts ranks from 1": ([("return {token_bytes: idx for idx, token_bytes in vocab.items()}",
                                              "return {token_bytes: idx + 1 for idx, token_bytes in vocab.items()}")], ranks,
                                            "each single byte b must have rank b"),
    # found by a cold reader (dev/results/mistake_hunt/hunt_10.md): each was silent, hung, or named another cause
    "get_stats loses the last pair": ([(PAIRS, "    for pair in [(ids[i], ids[i + 1]) for i in range(len(ids) - 2)]:\n")],
                                      get_stats, "the last pair is missed"),
    "merge reads past the end": ([("if i < len(ids) - 1 and ids[i] == pair[0]", "if ids[i] == pair[0]")], merge,
                                 "IndexError (list index out of range): it must not read past the end of ids"),
    "merge returns a tuple": ([("    return newids\n\n\n# %% [markdown]\n# **Check.** `get_stats`",
                                "    return tuple(newids)\n\n\n# %% [markdown]\n# **Check.** `get_stats`")], merge,
                              "merge must return a list, not a tuple"),
    "merge forgets i += 1 (hangs)": ([("            newids.append(ids[i])\n            i += 1", "            newids.append(ids[i])")],
                                     merge, "did not finish on a 3-token list: does every turn of its loop move i forward?"),
    "train counts the pairs once, before the loop": ([("            stats = get_stats(ids)\n            if not stats:\n                break  # the whole",
                                                        "            if not stats:\n                break  # the whole"),
                                                       ('ids = list(text.encode("utf-8"))  # (N,) integers 0..255',
                                                        'ids = list(text.encode("utf-8"))  # (N,) integers 0..255\n        stats = get_stats(ids)')],
                                                      basic_training, "count the merged list again"),
    "train does not stop when no pair is left": ([("            if not stats:\n                break  # the whole text is one token: nothing is left to merge\n", "")],
                                                 basic_training, "no pair was left (the text is one token), so stop merging there"),
    "encode leaves two bytes unmerged": ([("    while len(ids) >= 2:\n        stats = get_stats(ids)", "    while len(ids) > 2:\n        stats = get_stats(ids)")],
                                         basic_coding, "two bytes that have a merge must be merged too"),
    "basic encode takes the latest merge first": ([(LOWEST, 'pair = max(stats, key=lambda p: self.merges.get(p, -1))')],
                                                  basic_coding, "not the latest or the most frequent"),
    "basic encode does not stop when no merge applies": ([(STOP, "")], basic_coding, "it must stop when no pair present has a merge"),
    "encode takes code points, not UTF-8 bytes": ([('return self._encode_chunk(text.encode("utf-8"))',
                                                    'return self._encode_chunk([ord(c) for c in text])')], basic_coding,
                                                  "encode the text's UTF-8 bytes, not its characters' code points"),
    "special tokens not escaped in the split": ([('"|".join(regex.escape(token) for token in special)', '"|".join(token for token in special)')],
                                                special, "each matched literally"),
    "special tokens refused with allowed_special='none'": ([('if allowed_special == "none_raise" and any(', 'if allowed_special != "all" and any(')],
                                                           special, "with allowed_special='none' a special token is ordinary text"),
    # found by cold reader 3 (dev/results/mistake_hunt/hunt_10.md: the id in each name)
    'G6: default counts={} (mutable default)': ([('def get_stats(ids, counts=None):\n    """{pair: count} of every adjacent pair in ids, added into counts if one is given."""\n    counts = {} if counts is None else counts', 'def get_stats(ids, counts={}):\n    """{pair: count} of every adjacent pair in ids, added into counts if one is given."""')],
        get_stats, 'a default counts={} is one dict shared by every call'),
    'G7: counts = counts or {}': ([('counts = {} if counts is None else counts\n    for pair in zip(ids, ids[1:]):  # every', 'counts = counts or {}\n    for pair in zip(ids, ids[1:]):  # every')],
        get_stats, 'an empty {} too'),
    'G8: get(pair, 1)': ([('counts[pair] = counts.get(pair, 0) + 1\n    return counts', 'counts[pair] = counts.get(pair, 1) + 1\n    return counts')],
        get_stats, 'counted once more than it occurs'),
    'G9: pairs reversed zip(ids[1:], ids)': ([('for pair in zip(ids, ids[1:]):  # every adjacent pair, overlapping ones too', 'for pair in zip(ids[1:], ids):  # every adjacent pair, overlapping ones too')],
        get_stats, 'the pairs are the wrong way round'),
    'G12: pair as list-> str key': ([('    for pair in zip(ids, ids[1:]):  # every adjacent pair, overlapping ones too\n        counts[pair] = counts.get(pair, 0) + 1', "    for i in range(len(ids) - 1):\n        pair = f'{ids[i]},{ids[i+1]}'\n        counts[pair] = counts.get(pair, 0) + 1")],
        get_stats, 'its keys must be pairs'),
    'M9: slice compare to pair list vs tuple': ([('if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:\n            newids.append(idx)\n            i += 2  # both', 'if ids[i:i + 2] == pair:\n            newids.append(idx)\n            i += 2  # both')],
        merge, 'merged nothing, though the pair occurs'),
    'M11: append pair not idx': ([('            newids.append(idx)\n            i += 2  # both', '            newids.append(pair)\n            i += 2  # both')],
        merge, 'must hold ids (ints) only'),
    'T9: max(stats.items(), key=count) -> (pair,count)': ([('            pair = max(stats, key=stats.get)  # the most frequent pair (on a tie, the first one counted)', '            pair = max(stats.items(), key=lambda kv: kv[1])')],
        basic_training, 'max over stats.items() gives (pair, count)'),
    'T11: train on code points (ord)': ([('        ids = list(text.encode("utf-8"))  # (N,) integers 0..255\n        for idx in range(256, vocab_size):\n            stats = get_stats(ids)\n            if not stats:\n                break  # the whole text is one token', '        ids = [ord(c) for c in text]\n        for idx in range(256, vocab_size):\n            stats = get_stats(ids)\n            if not stats:\n                break  # the whole text is one token')],
        basic_training, "not its characters' code points"),
    'T13: ids = list(text) (chars)': ([('        ids = list(text.encode("utf-8"))  # (N,) integers 0..255\n        for idx in range(256, vocab_size):\n            stats = get_stats(ids)\n            if not stats:\n                break  # the whole text is one token', '        ids = list(text)\n        for idx in range(256, vocab_size):\n            stats = get_stats(ids)\n            if not stats:\n                break  # the whole text is one token')],
        basic_training, "train on the text's bytes, not its characters"),
    'D5: latin-1': ([('    text_bytes = b"".join(self.vocab[idx] for idx in ids)\n    return text_bytes.decode("utf-8", errors="replace")\n\n\nBasicTokenizer.decode', '    text_bytes = b"".join(self.vocab[idx] for idx in ids)\n    return text_bytes.decode("latin-1")\n\n\nBasicTokenizer.decode')],
        basic_coding, 'so read them as UTF-8'),
    'E8: stats hoisted out of while (optimisation)': ([('    while len(ids) >= 2:\n        stats = get_stats(ids)\n        pair = min(stats, key=lambda p: self.merges.get(p, float("inf")))  # the lowest merge id\n        if pair not in self.merges:\n            break  # no pair left has a merge\n        ids = merge(ids, pair, self.merges[pair])\n    return ids\n\n\ndef encode(self, text):', '    stats = get_stats(ids)\n    while len(ids) >= 2:\n        pair = min(stats, key=lambda p: self.merges.get(p, float("inf")))  # the lowest merge id\n        if pair not in self.merges:\n            break  # no pair left has a merge\n        ids = merge(ids, pair, self.merges[pair])\n    return ids\n\n\ndef encode(self, text):')],
        basic_coding, 'did not finish in 2 s'),
    'E9: break -> continue': ([('        if pair not in self.merges:\n            break  # no pair left has a merge\n        ids = merge(ids, pair, self.merges[pair])\n    return ids\n\n\ndef encode(self, text):', '        if pair not in self.merges:\n            continue  # no pair left has a merge\n        ids = merge(ids, pair, self.merges[pair])\n    return ids\n\n\ndef encode(self, text):')],
        basic_coding, 'did not finish in 2 s'),
    'E15: encode utf-16': ([('    return self._encode_chunk(text.encode("utf-8"))\n\n\nBasicTokenizer._encode_chunk', '    return self._encode_chunk(text.encode("utf-16-le"))\n\n\nBasicTokenizer._encode_chunk')],
        basic_coding, "not the text's UTF-8 bytes"),
    'R11: GPT4 pattern hard-coded in train (ignores self.pattern)': ([('        chunks = collections.Counter(self.compiled_pattern.findall(text))  # {chunk: how often it occurs}', '        chunks = collections.Counter(regex.findall(GPT4_SPLIT_PATTERN, text))')],
        regex_training, "made the merges of GPT-4's chunks"),
    'R13: chunks bytes via list(chunk) (str)': ([('        words, counts = [list(chunk.encode("utf-8")) for chunk in chunks], list(chunks.values())', '        words, counts = [[ord(c) for c in chunk] for chunk in chunks], list(chunks.values())')],
        regex_training, "not its characters' code points"),
    'O2: encode_ordinary GPT2 pattern': ([('    for chunk in self.compiled_pattern.findall(text):\n        ids.extend(self._encode_chunk(chunk.encode("utf-8")))\n    return ids', '    for chunk in regex.findall(GPT2_SPLIT_PATTERN, text):\n        ids.extend(self._encode_chunk(chunk.encode("utf-8")))\n    return ids')],
        regex_coding, 'another pattern than self.pattern'),
    'O3: append instead of extend': ([('    for chunk in self.compiled_pattern.findall(text):\n        ids.extend(self._encode_chunk(chunk.encode("utf-8")))\n    return ids', '    for chunk in self.compiled_pattern.findall(text):\n        ids.append(self._encode_chunk(chunk.encode("utf-8")))\n    return ids')],
        regex_coding, 'a flat list of ids'),
    'O4: self.encode(chunk) recursion': ([('    for chunk in self.compiled_pattern.findall(text):\n        ids.extend(self._encode_chunk(chunk.encode("utf-8")))\n    return ids', '    for chunk in self.compiled_pattern.findall(text):\n        ids.extend(self.encode(chunk))\n    return ids')],
        regex_coding, 'calls itself without end'),
    'O6: regex.split(pattern) instead of findall': ([('    for chunk in self.compiled_pattern.findall(text):\n        ids.extend(self._encode_chunk(chunk.encode("utf-8")))\n    return ids', '    for chunk in self.compiled_pattern.split(text):\n        ids.extend(self._encode_chunk(chunk.encode("utf-8")))\n    return ids')],
        regex_coding, 'a part of the text is lost'),
    'O7: return inside loop': ([('    for chunk in self.compiled_pattern.findall(text):\n        ids.extend(self._encode_chunk(chunk.encode("utf-8")))\n    return ids', '    for chunk in self.compiled_pattern.findall(text):\n        ids.extend(self._encode_chunk(chunk.encode("utf-8")))\n        return ids')],
        regex_coding, 'a part of the text is lost'),
    'S9: inverse without .items()': ([('    self.inverse_special_tokens = {idx: token for token, idx in special_tokens.items()}', '    self.inverse_special_tokens = {idx: token for token, idx in special_tokens}')],
        unregistered, 'special_tokens is a dict {token: id}'),
    'S13: str.split loop': ([('    parts = regex.split("(" + "|".join(regex.escape(token) for token in special) + ")", text)  # keeps the tokens\n    return [idx for part in parts for idx in ([special[part]] if part in special else self.encode_ordinary(part))]', '    ids = []\n    token, idx = next(iter(special.items()))\n    for k, part in enumerate(text.split(token)):\n        if k:\n            ids.append(idx)\n        ids.extend(self.encode_ordinary(part))\n    return ids')],
        special, 'only some special tokens are cut out'),
    'S15: decode_with_special per-part str decode': ([('    parts = (self.vocab[idx] if idx in self.vocab else self.inverse_special_tokens[idx].encode("utf-8") for idx in ids)\n    return b"".join(parts).decode("utf-8", errors="replace")', '    return "".join(self.vocab[idx].decode("utf-8", errors="replace") if idx in self.vocab else self.inverse_special_tokens[idx] for idx in ids)')],
        special, 'it decodes each token on its own'),
    'K7: sorted(merges.items()) order': ([('    vocab = {idx: bytes([idx]) for idx in range(256)}\n    for (p0, p1), idx in tokenizer.merges.items():  # in training order, so both halves are spelled out already\n        vocab[idx] = vocab[p0] + vocab[p1]\n    return {token_bytes: idx for idx, token_bytes in vocab.items()}', '    vocab = {idx: bytes([idx]) for idx in range(256)}\n    for (p0, p1), idx in sorted(tokenizer.merges.items()):  # in training order, so both halves are spelled out already\n        vocab[idx] = vocab[p0] + vocab[p1]\n    return {token_bytes: idx for idx, token_bytes in vocab.items()}')],
        ranks, 'in the order they were made'),
}

CORRECT = {  # correct code a learner may write instead: the check must pass it
    "merge with enumerate and a skip flag": ([(
        "    newids, i = [], 0\n    while i < len(ids):\n        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:\n"
        "            newids.append(idx)\n            i += 2  # both tokens of the pair are used up\n        else:\n"
        "            newids.append(ids[i])\n            i += 1\n",
        "    newids, skip = [], False\n    for i, token in enumerate(ids):\n        if skip:\n            skip = False\n"
        "        elif tuple(ids[i:i + 2]) == tuple(pair):\n            newids.append(idx)\n            skip = True\n"
        "        else:\n            newids.append(token)\n")], merge),
    "get_stats with collections.Counter": ([("    counts = {} if counts is None else counts\n" + PAIRS +
                                             "        counts[pair] = counts.get(pair, 0) + 1\n",
                                             "    counts = {} if counts is None else counts\n"
                                             "    for pair, n in collections.Counter(zip(ids, ids[1:])).items():\n"
                                             "        counts[pair] = counts.get(pair, 0) + n\n")], get_stats),
    "train breaks ties by the smallest pair": ([(MOST, "pair = max(sorted(stats), key=stats.get)")], basic_training),
    "regex train as minbpe writes it (every count redone)": ([(
        "        for idx in range(256, vocab_size):\n            if not stats:\n                break  # every chunk is a single token: nothing is left to merge\n"
        "            pair = max(stats, key=stats.get)\n            merge_everywhere(pair, idx, words, counts, stats, where)\n",
        "        for idx in range(256, vocab_size):\n            stats = {}\n            for w, ids in enumerate(words):\n"
        "                for p in zip(ids, ids[1:]):\n                    stats[p] = stats.get(p, 0) + counts[w]\n"
        "            if not stats:\n                break\n            pair = max(stats, key=stats.get)\n"
        "            words = [merge(ids, pair, idx) for ids in words]\n")], regex_training),
    "encode makes every merge in order, one after another": ([(
        "    ids = list(text_bytes)\n    while len(ids) >= 2:\n        stats = get_stats(ids)\n        " + LOWEST + "\n" + STOP +
        "        ids = merge(ids, pair, self.merges[pair])\n",
        "    ids = list(text_bytes)\n    for pair, idx in self.merges.items():\n        ids = merge(ids, pair, idx)\n")], regex_coding),
    "decode with a bytearray": ([(JOIN, "text_bytes = bytearray()\n    for idx in ids:\n        text_bytes += self.vocab[idx]\n"
                                        '    return text_bytes.decode("utf-8", errors="replace")')], basic_coding),
    "mergeable_ranks from the vocab": ([("    vocab = {idx: bytes([idx]) for idx in range(256)}\n    for (p0, p1), idx in "
                                         "tokenizer.merges.items():  # in training order, so both halves are spelled out already\n"
                                         + RANK_PAIR, "    vocab = tokenizer.vocab\n")], ranks),
    "train with Counter.most_common": ([(MOST, "pair = collections.Counter(stats).most_common(1)[0][0]")], basic_training),
    "basic encode makes every merge in order": ([(
        "    ids = list(text_bytes)\n    while len(ids) >= 2:\n        stats = get_stats(ids)\n        " + LOWEST + "\n" + STOP +
        "        ids = merge(ids, pair, self.merges[pair])\n",
        "    ids = list(text_bytes)\n    for pair, idx in self.merges.items():\n        ids = merge(ids, pair, idx)\n")], basic_coding),
    "encode_with_special through encode": ([("else self.encode_ordinary(part))]", "else self.encode(part))]")], special),
    "merge_everywhere without pop": ([("    for w in where.pop(pair):", "    for w in list(where[pair]):")], regex_training),
    # cold reader 3's correct variants (G11, G13, O5, S10, K6)
    "get_stats with a range loop": ([(PAIRS + "        counts[pair] = counts.get(pair, 0) + 1\n", "    for i in range(len(ids) - 1):\n"
                                      "        counts[ids[i], ids[i + 1]] = counts.get((ids[i], ids[i + 1]), 0) + 1\n")], get_stats),
    "get_stats with a defaultdict": ([("counts = {} if counts is None else counts", "counts = collections.defaultdict(int) if "
                                       "counts is None else counts")], get_stats),
    "encode_ordinary through BasicTokenizer.encode": ([('        ids.extend(self._encode_chunk(chunk.encode("utf-8")))\n    return ids',
                                                        '        ids.extend(BasicTokenizer.encode(self, chunk))\n    return ids')], regex_coding),
    "register_special_tokens with update": ([("    self.special_tokens = dict(special_tokens)\n",
                                              "    self.special_tokens.update(special_tokens)\n")], special),
    "mergeable_ranks from the sorted vocab": ([("    return {token_bytes: idx for idx, token_bytes in vocab.items()}",
                                                "    return {vocab[i]: i for i in sorted(vocab)}")], ranks),
}


FLOW = {  # a mistake the notebook's own cells meet in order, as a learner runs them: (edits, the cell to stop after, sentence)
    "encode does not stop when no merge applies (E3: was a raw KeyError in a visible cell)": (
        [(STOP, "")], "check_encode_decode(basic)", "it must stop when no pair present has a merge"),
    "merge reads past the end (was an IndexError in the lecture's example)": (
        [("if i < len(ids) - 1 and ids[i] == pair[0]", "if ids[i] == pair[0]")], "check_merge(merge)",
        "it must not read past the end of ids"),
    "merge forgets i += 1 (hung in the lecture's example)": (
        [("            newids.append(ids[i])\n            i += 1", "            newids.append(ids[i])")], "check_merge(merge)",
        "does every turn of its loop move i forward?"),
    "train writes a pair's ids as its bytes (check_training runs before any visible cell trains)": (
        [(BASIC_VOCAB, BASIC_VOCAB.replace("self.vocab[pair[0]] + self.vocab[pair[1]]", "bytes(pair)"))],
        "check_encode_decode(basic)", "not the bytes of its pair"),
    "special tokens refused with allowed_special='none' (was a ValueError in a visible cell)": (
        [('if allowed_special == "none_raise" and any(', 'if allowed_special != "all" and any(')],
        "check_special_tokens(tokenizer)", "with allowed_special='none' a special token is ordinary text"),
    "register_special_tokens without .items() (S9: was a raw ValueError in a visible cell)": (
        [("{idx: token for token, idx in special_tokens.items()}", "{idx: token for token, idx in special_tokens}")],
        "check_special_tokens(tokenizer)  # on a copy, with special tokens of its own", "special_tokens is a dict {token: id}"),
}


def run_cells(edits, until, monkeypatch):
    """Run the notebook's code cells in order in smoke mode, with edits, up to the first cell with the line `until`."""
    monkeypatch.setenv("COURSE_SMOKE", "1")
    monkeypatch.delenv("COURSE_DATA", raising=False)
    source = (NOTEBOOKS / f"{NB}.py").read_text(encoding="utf-8")
    for old, new in edits:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    namespace = {"__name__": "__main__", "__file__": str(NOTEBOOKS / f"{NB}.py")}
    for cell in jupytext.reads(source, fmt="py:percent").cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, f"{NB}.py", "exec"), namespace)
            if until in cell.source.splitlines():  # the line that calls the check, not the def that holds its name
                return namespace
    raise LookupError(f"no code cell has the line {until!r}")


@pytest.mark.parametrize("mistake", list(FLOW))
def test_the_notebooks_own_cells_meet_the_mistake_with_its_sentence(mistake, monkeypatch):
    """No visible cell runs a learner's piece before its check: the first error is the check's one sentence."""
    edits, until, sentence = FLOW[mistake]
    with pytest.raises(Exception) as caught:
        run_cells(edits, until, monkeypatch)
    message = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and sentence in message and "\n" not in message, message


def test_the_notebooks_own_cells_run_clean_up_to_the_oracle(monkeypatch):
    """Without a mistake the same cells run through (so the test above fails only on the mistake)."""
    assert "enc" in run_cells([], "check_mergeable_ranks(mergeable_ranks, tokenizer)", monkeypatch)


def said(edits, run_check):
    """What the check says about the notebook with edits: CheckFailed's sentence, a raw traceback, or SILENT."""
    try:
        result = run_check(ns(edits))
    except AssertionError as e:
        return f"{type(e).__name__}: {e}"
    except Exception as e:
        return f"TRACEBACK {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return f"SILENT: {result}"


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake):
    edits, run_check, sentence = MISTAKES[mistake]
    with pytest.raises(AssertionError) as caught:
        run_check(ns(edits))
    message = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and sentence in message and "\n" not in message, message


@pytest.mark.parametrize("variant", list(CORRECT))
def test_the_check_accepts_a_correct_variant(variant):
    edits, run_check = CORRECT[variant]
    assert "passed" in run_check(ns(edits))


def test_there_are_at_least_twenty_mistakes():
    assert len(MISTAKES) >= 20


if __name__ == "__main__":  # the table of dev/results/mistake_hunt/hunt_10.md: mistake | what the check says
    for name, (edits, run_check, *_) in {**MISTAKES, **{f"CORRECT {k}": v for k, v in CORRECT.items()}}.items():
        print(f"| {name} | {said(edits, run_check)[:200].replace('|', '/')} |")
        sys.stdout.flush()
