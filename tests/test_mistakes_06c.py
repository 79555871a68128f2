"""Notebook 06c's mistake hunt: mistakes a learner new to the code makes in exercise 4 (GELU, weight
tying, RoPE; one edit of the notebook's own solution, as the learner would write it), each met by the
check after the piece with the sentence that names it; and correct variants the checks must pass."""
import pytest

from notebook_code import load

NB = "06c_ideas_from_papers"

GELU = "    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))\n"
TIE = "        self.lm_head.weight = self.token_embedding_table.weight  # one Parameter (vocab_size, n_embd), used twice\n"
SUPER = "        super().__init__(config, flash)\n" + TIE
THETA = "theta = 10000 ** (-2 * torch.arange(hs // 2, device=x.device) / hs)  # (hs/2,) the pairs' speeds"
ANGLES = "angles = torch.arange(T, device=x.device)[:, None] * theta[None, :]  # (T, hs/2)"
SIZES = "T, hs = x.shape[-2], x.shape[-1]\n    theta"
TURN = "return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, nh, T, hs)"
HALVES = "x1, x2 = x[..., :hs // 2], x[..., hs // 2:]  # (B, nh, T, hs/2) each"

gelu = lambda ns: ns["check_gelu"](ns["gelu_solution"])
tying = lambda ns: ns["check_tying"](ns["TiedGPTSolution"])
rope = lambda ns: ns["check_rope"](ns["rope_solution"])

MISTAKES = {  # name: (the learner's edits as (old, new) pairs, the check, what its sentence must say)
    "4a Φ alone, not x times Φ": ([(GELU, "    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))\n")], gelu, "differs from F.gelu"),
    "4a erf of x / 2": ([(GELU, GELU.replace("math.sqrt(2.0)", "2.0"))], gelu, "differs from F.gelu by up to"),
    "4a the sigmoid form": ([(GELU, "    return x * torch.sigmoid(1.702 * x)\n")], gelu, "differs from F.gelu by up to"),
    "4a ReLU": ([(GELU, "    return torch.relu(x)\n")], gelu, "gelu_solution is ReLU"),
    "4a computed in place": ([(GELU, "    return x.mul_(0.5 * (1.0 + torch.erf(x / math.sqrt(2.0))))\n")], gelu,
                             "changed its input in place"),
    "4a math.erf on a tensor": ([(GELU, GELU.replace("torch.erf", "math.erf"))], gelu, "fails on a tensor of shape (81,): ValueError: only one element tensors"),
    "4a a list returned": ([(GELU, "    return (x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))).tolist()\n")], gelu,
                           "should return a tensor of x's shape (81,), got list"),
    "4b a copy of the embedding's values": ([(TIE, "        self.lm_head.weight = nn.Parameter(self.token_embedding_table"
                                                   ".weight.detach().clone())\n")], tying, "holding a copy of the embedding's values"),
    "4b the data shared, not the Parameter": ([(TIE, "        self.lm_head.weight.data = self.token_embedding_table.weight.data\n")],
                                              tying, "sharing the embedding's memory"),
    "4b tied before the layers exist": ([(SUPER, TIE + "        super().__init__(config, flash)\n")],
                                        tying, "the layers exist only after super().__init__(config, flash)"),
    "4b the transposed matrix": ([(TIE, "        self.lm_head.weight = nn.Parameter(self.token_embedding_table.weight.T)\n")],
                                 tying, "is a separate Parameter"),
    "4b the position table tied instead": ([(TIE, "        self.lm_head.weight = self.position_embedding_table.weight\n")],
                                           tying, "is a separate Parameter"),
    "4b the embedding module used as lm_head": ([(TIE, "        self.lm_head = self.token_embedding_table\n")], tying,
                                                "fails on idx of shape (B, T) = (4, 8)"),
    "4b the embedding's values copied into lm_head": ([(TIE, "        with torch.no_grad():\n            self.lm_head.weight"
                                                             ".copy_(self.token_embedding_table.weight)\n")],
                                                      tying, "holding a copy of the embedding's values"),
    "4c pairs of neighbouring channels": ([(HALVES, "x1, x2 = x[..., 0::2], x[..., 1::2]"),
                                           (TURN, "return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)")],
                                          rope, "turns other pairs of channels than (i, i + hs/2)"),
    "4c the exponent -i/hs": ([(THETA, THETA.replace("-2 *", "-1 *"))], rope, "turns the pairs by other angles: at position"),
    "4c base 100": ([(THETA, THETA.replace("10000 **", "100 **"))], rope, "turns the pairs by other angles"),
    "4c the angle t squared": ([(ANGLES, ANGLES.replace("[:, None] *", "[:, None] ** 2 *"))], rope, "not only on m - n"),
    "4c positions from 1": ([(ANGLES, ANGLES.replace("torch.arange(T,", "torch.arange(1, T + 1,"))], rope,
                            "turns position 0 by θ_i, the angle of position 1: number the positions from 0"),
    "4c a sign wrong": ([(TURN, TURN.replace("x1 * cos - x2 * sin", "x1 * cos + x2 * sin"))], rope, "changes the length of the pairs"),
    "4c cos and sin swapped": ([(TURN, "return torch.cat([x1 * sin - x2 * cos, x1 * cos + x2 * sin], dim=-1)")], rope,
                               "changes position 0 (pair 0 turns by"),
    "4c the sequence length fixed": ([(SIZES, "T, hs = 12, x.shape[-1]\n    theta")], rope,
                                     "fails on x of shape (B, nh, T, hs) = (1, 2, 5, 16)"),
    "4c the head size fixed": ([(SIZES, "T, hs = x.shape[-2], 8\n    theta")], rope,
                               "fails on x of shape (B, nh, T, hs) = (1, 2, 5, 16)"),
    "4c the heads' axis taken for time": ([(SIZES, "T, hs = x.shape[1], x.shape[-1]\n    theta")], rope,
                                          "fails on x of shape (B, nh, T, hs) = (2, 3, 12, 8)"),
    "4c turned in place": ([(TURN, "x1.copy_(x1 * cos - x2 * sin), x2.copy_(x1 * sin + x2 * cos)\n    return x")], rope,
                           "changed its input in place"),
    "4c only the first half returned": ([(TURN, "return x1 * cos - x2 * sin")], rope, "should return a tensor of x's shape"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake):
    edits, run_check, sentence = MISTAKES[mistake]
    with pytest.raises(AssertionError) as caught:
        run_check(load(NB, replace=edits, device="cpu"))
    said = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and sentence in said and "\n" not in said, said


CORRECT = {  # correct code a learner may write instead of the solution: the check must pass it
    "4a F.gelu itself": ([(GELU, "    return F.gelu(x)\n")], gelu),
    "4a the tanh form": ([(GELU, "    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))\n")], gelu),
    "4b tied the other way, as nanoGPT writes it": ([(TIE, "        self.token_embedding_table.weight = self.lm_head.weight\n")], tying),
    "4b nanoGPT's head without a bias": ([(TIE, "        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)\n"
                                                "        self.lm_head.weight = self.token_embedding_table.weight\n")], tying),
    "4c turned the other way round": ([(TURN, "return torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos], dim=-1)")], rope),
    "4c complex multiplication": ([(TURN, "z = torch.complex(x1, x2) * torch.polar(torch.ones_like(angles), angles)\n"
                                          "    return torch.cat([z.real, z.imag], dim=-1)")], rope),
}


@pytest.mark.parametrize("variant", list(CORRECT))
def test_the_check_accepts_a_correct_variant(variant):
    edits, run_check = CORRECT[variant]
    assert "passed" in run_check(load(NB, replace=edits, device="cpu"))


def test_there_are_at_least_fifteen_mistakes_in_this_notebook():
    assert len(MISTAKES) >= 15 and {m[:2] for m in MISTAKES} == {"4a", "4b", "4c"}
