"""Notebook 11b's own code: the checks pass on the RL pieces, the RL pieces follow their definitions on a real model,
the copies of notebook 11's pieces are notebook 11's, and `--chat` talks to a saved model from stdin, refusing bad
input in one line, ending cleanly on an empty line, EOF and Ctrl-C."""
import signal

import pytest
import torch

from notebook_code import NOTEBOOKS
from script_runner import one_line_error, run_script, smoke_env, spawn_script
from test_11_chat_model import notebook

NAME = "11b_reinforcement_learning"
SCRIPT = NOTEBOOKS / f"{NAME}.py"


@pytest.fixture(scope="module")
def nb(shakespeare):
    return notebook(shakespeare, NAME)


def test_every_check_passes_on_the_notebooks_own_pieces(nb):
    for check, piece in (("check_rollout_batch", "rollout_batch"), ("check_token_logprobs", "token_logprobs"),
                         ("check_group_advantages", "group_advantages"), ("check_policy_gradient_loss", "policy_gradient_loss"),
                         ("check_reinforce", "reinforce")):
        assert "passed" in nb[check](nb[piece]), check


def test_the_policy_gradient_learns_only_the_sampled_tokens(nb):
    torch.manual_seed(1)
    model = nb["GPT"](nb["GPTConfig"](vocab_size=len(nb["vocab"]), block_size=32, n_embd=32, n_head=2, n_layer=1, dropout=0.0))
    prompts = [nb["prompt_for"](p) for p in nb["HELD_OUT"][:4].tolist()]
    replies = nb["sample_replies"](model, prompts, 4, 1.0)
    x, y = nb["rollout_batch"](prompts, replies)
    logp = nb["token_logprobs"](model, x, y)
    reference = torch.log_softmax(model(x)[0], -1)
    for b, (prompt, reply) in enumerate(zip(prompts, replies)):
        for t, token in enumerate(reply):
            assert torch.isclose(logp[b, len(prompt) - 1 + t], reference[b, len(prompt) - 1 + t, token], atol=1e-5)
    advantages = nb["group_advantages"](torch.tensor([[1.0, 0.0], [0.0, 0.0]])).flatten()
    assert torch.equal(advantages, torch.tensor([0.5, -0.5, 0.0, 0.0]))
    logp = logp.detach().requires_grad_()
    grad, = torch.autograd.grad(nb["policy_gradient_loss"](logp, y, advantages), logp)
    assert not grad[y == -1].any() and not grad[2:].any() and (grad[0][y[0] != -1] < 0).all()


def test_an_rl_step_on_an_all_right_or_all_wrong_batch_changes_nothing(nb):
    """Equal rewards in every group give zero advantages: the step's gradient is zero (AdamW, no weight decay)."""
    torch.manual_seed(2)
    model = nb["GPT"](nb["GPTConfig"](vocab_size=len(nb["vocab"]), block_size=32, n_embd=16, n_head=2, n_layer=1, dropout=0.0))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = nb["configure_optimizer"](model, 1e-2, weight_decay=0.0)
    assert nb["rl_step"](model, optimizer, nb["HELD_OUT"][:3].tolist(), 4) == 0.0  # an untrained model answers nothing right
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def saved_model(nb, path):
    torch.manual_seed(0)
    config = nb["GPTConfig"](vocab_size=len(nb["vocab"]), block_size=64, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    nb["save_chat_model"](nb["GPT"](config), path)
    return path


def chat(path, stdin, *argv):
    process = spawn_script(SCRIPT, "--chat", "--ckpt", path, *argv, cwd=NOTEBOOKS, stdin=-1, stdout=-1, stderr=-1)
    out, err = process.communicate(stdin, timeout=120)
    return process.returncode, out, err


def test_chat_answers_refuses_bad_lines_in_one_line_and_goes_on(nb, tmp_path):
    path = saved_model(nb, tmp_path / "chat.pt")
    code, out, err = chat(path, "what is 12 + 5?\nwhat is 3 € 4?\n" + "x" * 80 + "\nadd 1 and 2.\n\nnot read\n")
    assert code == 0 and "Traceback" not in err, err
    assert out.count("model> ") == 2  # the two good questions, not the refused ones nor the line after the empty one
    errors = [line for line in out.splitlines() if "error: " in line]
    assert len(errors) == 2, out
    assert "has no token for '€'" in errors[0] and "too long" in errors[1]
    assert out.rstrip().endswith("bye")


def test_chat_ends_cleanly_at_end_of_input(nb, tmp_path):
    code, out, err = chat(saved_model(nb, tmp_path / "chat.pt"), "what is 1 + 1?\n", "--temperature", "0.8")
    assert code == 0 and "Traceback" not in err and out.count("model> ") == 1 and out.rstrip().endswith("bye")


def test_chat_ends_cleanly_on_ctrl_c(nb, tmp_path):
    path = saved_model(nb, tmp_path / "chat.pt")
    process = spawn_script(SCRIPT, "--chat", "--ckpt", path, cwd=NOTEBOOKS, stdin=-1, stdout=-1, stderr=-1)
    while not process.stdout.readline().startswith("Ask something"):  # wait until the loop waits for a line
        assert process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in err and out.rstrip().endswith("bye"), (out, err)


def test_a_missing_or_broken_checkpoint_is_one_line(tmp_path):
    assert "no chat model at" in one_line_error(run_script(SCRIPT, "--chat", "--ckpt", tmp_path / "none.pt", cwd=NOTEBOOKS))
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    assert "is not a chat model saved by notebook 11 or 11b" in one_line_error(
        run_script(SCRIPT, "--chat", "--ckpt", tmp_path / "bad.pt", cwd=NOTEBOOKS))
    error = one_line_error(run_script(SCRIPT, "--sft", tmp_path / "none.pt", cwd=NOTEBOOKS, env=smoke_env()))
    assert "no chat model at" in error and "11_chat_model.py" in error and "--sft FILE" in error


BAD_FLAGS = [
    (["--temperature", "-1", "--chat"], "--temperature must be a finite number, at least 0 (got -1.0)"),
    (["--temperature", "nan", "--chat"], "--temperature must be a finite number, at least 0"),
    (["--temperature", "0.5"], "--temperature sets --chat's sampling"),
    (["--seed", "-3"], "--seed must be between 0 and 2**63 - 1"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--steps", "5"], "unrecognized arguments: --steps 5"),
]


@pytest.mark.parametrize("argv,expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_are_one_line(argv, expected):
    assert expected in one_line_error(run_script(SCRIPT, *argv, cwd=NOTEBOOKS, env=smoke_env()))
