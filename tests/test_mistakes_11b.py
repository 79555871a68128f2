"""Notebook 11b's mistake hunt: mistakes a learner makes in the RL pieces (one edit of the notebook's own code), each
met by the check after the piece with the sentence that names it; and correct variants that must pass."""
import pytest
import torch

from notebook_code import load
from test_11_chat_model import KEEP

NB = "11b_reinforcement_learning"
ROLLOUT = "y[i, len(prompt) - 1:len(ids) - 1] = ids[len(prompt):]  # y[t] is token t + 1: the reply's tokens only"
LOGP = "logp = F.log_softmax(logits, dim=-1).gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)"
ADV = "return rewards - rewards.mean(dim=1, keepdim=True)"
PG = "return -(logp * advantages.unsqueeze(1) * sampled).sum() / sampled.sum().clamp(min=1)"

checked = lambda check, piece: lambda ns: ns[check](ns[piece])
rollout, logp = checked("check_rollout_batch", "rollout_batch"), checked("check_token_logprobs", "token_logprobs")
adv, pg = checked("check_group_advantages", "group_advantages"), checked("check_policy_gradient_loss", "policy_gradient_loss")
rl = checked("check_reinforce", "reinforce")
RS = "replies = sample_replies(model, prompts, MAX_ANSWER, temperature=1.0)"
RW = "reward = torch.tensor([float(is_right(r, p)) for r, p in zip(replies, ps)]).view(len(problems), group)  # (P, G)"
DC = "model, rng = copy.deepcopy(model).train(), torch.Generator().manual_seed(seed + 1)"
OPT = "    optimizer = configure_optimizer(model, lr, weight_decay=0.0)"
STEP = "    optimizer.zero_grad(set_to_none=True)\n    loss.backward()\n    optimizer.step()\n    return reward.mean().item()"
PAD = "x = torch.full((len(prompts), T), END, dtype=torch.long)  # (B, T)\n    y = torch.full((len(prompts), T), -1"

MISTAKES = {  # name: (the learner's edits as (old, new) pairs, the check, what its sentence must say)
    "the prompt learned in RL": ([(ROLLOUT, "y[i, :len(ids) - 1] = ids[1:]")], rollout, "only the reply's tokens are targets"),
    "the reply's targets one late (R1)": ([(ROLLOUT, "y[i, len(prompt):len(ids)] = ids[len(prompt):]")], rollout,
                                          "rollout_batch(prompts, replies) raised RuntimeError"),
    "the last reply token dropped": ([(ROLLOUT, "y[i, len(prompt) - 1:len(ids) - 2] = ids[len(prompt):-1]")], rollout,
                                     "only the reply's tokens are targets (the prompt's are -1), its last one too"),
    "softmax, not log_softmax": ([(LOGP, LOGP.replace("F.log_softmax", "F.softmax"))], logp, "the probabilities are not logged"),
    "raw logits": ([(LOGP, LOGP.replace("F.log_softmax(logits, dim=-1)", "logits"))], logp, "the logits are taken raw"),
    "the most likely token's log-prob": ([(LOGP, "logp = F.log_softmax(logits, dim=-1).max(-1).values  # (B, T)")], logp,
                                         "not of the tokens sampled"),
    "the input token's log-prob": ([(LOGP, LOGP.replace("y.clamp(min=0)", "x"))], logp,
                                   "the log-probability of the token that was sampled"),
    "log-probs without gradients": ([(LOGP, LOGP.replace("F.log_softmax(logits, dim=-1)", "F.log_softmax(logits, dim=-1).detach()"))],
                                    logp, "carries no gradient"),
    "the batch's mean": ([(ADV, "return rewards - rewards.mean()")], adv, "over the whole batch, not over each problem's group"),
    "the mean over problems": ([(ADV, "return rewards - rewards.mean(dim=0, keepdim=True)")], adv, "over the problems (dim 0)"),
    "no baseline": ([(ADV, "return rewards")], adv, "subtract each group's mean reward"),
    "the mean minus the reward": ([(ADV, "return rewards.mean(dim=1, keepdim=True) - rewards")], adv, "not the mean minus the reward"),
    "the prompt in the policy gradient": ([(PG, "return -(logp * advantages.unsqueeze(1)).sum() / sampled.sum().clamp(min=1)")], pg,
                                          "nothing is learned from the prompt"),
    "the sign of the loss": ([(PG, PG.replace("return -(", "return ("))], pg, "pushes a sampled token's log-probability down"),
    # found by a cold reader (dev/results/mistake_hunt/hunt_11.md)
    "the reply's targets not shifted": ([(ROLLOUT, "y[i, len(prompt) - 1:len(ids) - 1] = ids[len(prompt) - 1:-1]")], rollout,
                                        "each one place later"),
    "the first reply token dropped": ([(ROLLOUT, "y[i, len(prompt):len(ids) - 1] = ids[len(prompt) + 1:]")], rollout,
                                      "its first one too"),
    "log-probs not zeroed off the reply": ([("    return logp * (y != -1)", "    return logp")], logp, "not 0 where y is -1"),
    "-1 gathered": ([(LOGP, LOGP.replace("y.clamp(min=0)", "y"))], logp, "which are no token's index"),
    "divided by a zero spread": ([(ADV, "return (rewards - rewards.mean(1, keepdim=True)) / rewards.std(1, keepdim=True)")], adv,
                                 "gives NaN for a group whose rewards are all equal"),
    "probabilities in the policy gradient": ([(PG, PG.replace("-(logp *", "-(logp.exp() *"))], pg,
                                             "linear in the log-probabilities (not the probabilities)"),
    "logp detached in the loss": ([(PG, PG.replace("-(logp *", "-(logp.detach() *"))], pg, "must carry logp's gradient"),
    "attention not causal in 11b's copy": ([("is_causal=True, dropout_p", "is_causal=False, dropout_p")], lambda ns: ns["check_gpt"](ns["GPT"]),
                                           "so the model sees the future"),
    # the cold reader of session 3 (RL1-RL11): the RL loop's check, on a stand-in whose rewards are mixed
    "RL on the model itself, not a copy": ([(DC, DC.replace("copy.deepcopy(model)", "model"))], rl, "changed the model it was given"),
    "the optimizer built before the copy": ([("    " + DC + "\n" + OPT, OPT + "\n    " + DC)], rl,
                                            "the optimizer does not hold the copy's parameters"),
    "answers sampled greedily": ([(RS, RS.replace("temperature=1.0", "temperature=0"))], rl, "sample the group's answers at temperature 1"),
    "rewards grouped across problems": ([(RW, RW.replace(".view(len(problems), group)", ".view(group, len(problems)).T"))], rl,
                                        "one problem's own G answers"),
    "advantages not flattened": ([("group_advantages(reward).flatten().to(device)", "group_advantages(reward).to(device)")], rl,
                                 "reinforce(stand_in, 2, 6, 8, 0.1, 2, 0) raised RuntimeError"),
    "rollout inputs padded with -1": ([(PAD, PAD.replace("T), END, dtype", "T), -1, dtype"))], rl, "a token id below 0"),
    "the log's measure a dict": ([('held_out_accuracy(model, "", samples=0), None)], []', 'held_out_accuracy(model, ""), None)], []')], rl,
                                 "something other than a number"),
    "RL on the held-out problems": ([("rl_step(model, optimizer, training_problems(n_problems, rng), group)",
                                      "rl_step(model, optimizer, HELD_OUT[torch.randint(500, (n_problems,), generator=rng)].tolist(), group)")],
                                    rl, "are to held-out problems"),
    "zero_grad between backward and step": ([(STEP, STEP.replace("    optimizer.zero_grad(set_to_none=True)\n    loss.backward()",
                                                                 "    loss.backward()\n    optimizer.zero_grad(set_to_none=True)"))],
                                            rl, "the gradients are gone before optimizer.step()"),
    # the cold reader of session 3, left open then (R1, R3): fixed in session 4
    "the reply's targets one late, named (R1)": ([(ROLLOUT, "y[i, len(prompt):len(ids)] = ids[len(prompt):]")], rollout,
                                                 "y[t] is token t + 1, so they fill positions len(prompt) - 1 on, and one place late overflows"),
    "rollout inputs padded with -1, met at rollout_batch (R3)": ([(PAD, PAD.replace("T), END, dtype", "T), -1, dtype"))], rollout,
                                                                 "x holds -1, which is no token the model can read"),
    "rewards against the wrong problems": ([(RW, RW.replace("zip(replies, ps)", "zip(replies, problems * group)"))], rl,
                                           "one problem's own G answers"),
}

VARIANTS = {  # correct ways to write a piece: each check must pass
    "advantages over the group's standard deviation (GRPO)": ([(ADV, "return (rewards - rewards.mean(1, keepdim=True)) / "
                                                                     "(rewards.std(1, keepdim=True) + 1e-4)")], adv),
    "a summed policy-gradient loss": ([(PG, "return -(logp * advantages[:, None] * sampled).sum()")], pg),
    "a loss averaged per sequence": ([(PG, "return -((logp * sampled).sum(1) / sampled.sum(1).clamp(min=1) * advantages).mean()")], pg),
    "extra padding in rollout_batch": ([("T = max(len(p) + len(r) for p, r in zip(prompts, replies)) - 1",
                                         "T = max(len(p) for p in prompts) + max(len(r) for r in replies) - 1")], rollout),
    "advantages over std + eps": ([(ADV, "return (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)")], adv),
    "the RL loop as written": ([], rl),
    "a summed loss in the RL loop": ([(PG, "return -(logp * advantages[:, None] * sampled).sum()")], rl),
    "GRPO's advantages in the RL loop": ([(ADV, "return (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)")], rl),
    "zero_grad after the step": ([(STEP, "    loss.backward()\n    optimizer.step()\n    optimizer.zero_grad()\n    return reward.mean().item()")], rl),
    "cross_entropy for the log-probs": ([(LOGP, "logp = -F.cross_entropy(logits.transpose(1, 2), y.clamp(min=0), reduction='none')")], logp),
}


@pytest.fixture(scope="module")
def chars(shakespeare):
    return sorted(set(shakespeare))


@pytest.fixture(scope="module")
def data(chars, shakespeare):
    """The first 100,000 characters as ids, made once for the module (a notebook's code never changes them)."""
    return torch.tensor([chars.index(c) for c in shakespeare[:100_000]])


def loaded(chars, data, edits):
    return load(NB, keep=KEEP, replace=edits, device="cpu", chars=chars, train_data=data[:90_000], val_data=data[90_000:])


@pytest.mark.parametrize("name", list(MISTAKES))
def test_the_check_names_the_mistake(name, chars, data):
    edits, run, sentence = MISTAKES[name]
    ns = loaded(chars, data, edits)
    with pytest.raises(ns["CheckFailed"]) as caught:
        run(ns)
    assert sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_correct_variant_passes(name, chars, data):
    edits, run = VARIANTS[name]
    assert "passed" in run(loaded(chars, data, edits))
