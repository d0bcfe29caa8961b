"""Unit tests of models/gpt.py on CPU with tiny configs and fixed seeds."""

from __future__ import annotations

import math

import pytest
import torch

from models.gpt import GPT, build_model
from models.gpt_config import GPTConfig

V = 64  # vocabulary of the tiny models


def tiny(seed: int = 0, **overrides) -> GPT:
    """A 2-layer, 32-wide GPT with context 16, built under ``torch.manual_seed(seed)``."""
    cfg = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=V)
    cfg.update(overrides)
    torch.manual_seed(seed)
    return GPT(GPTConfig(**cfg))


def tokens(B: int, T: int, seed: int = 1, vocab: int = V) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (B, T), generator=g)


def test_forward_shapes_and_dtype() -> None:
    model = tiny()
    idx = tokens(3, 10)
    logits, loss = model(idx)
    assert logits.shape == (3, 10, V) and logits.dtype == torch.float32
    assert loss is None
    logits, loss = model(idx, targets=tokens(3, 10, seed=2))
    assert loss is not None and loss.shape == () and loss.dtype == torch.float32


def test_loss_at_init_is_about_log_vocab() -> None:
    model = tiny(vocab_size=256)
    _, loss = model(tokens(4, 16, vocab=256), targets=tokens(4, 16, seed=2, vocab=256))
    assert abs(loss.item() - math.log(256)) < 0.3


def test_attention_is_causal() -> None:
    model = tiny().eval()
    idx = tokens(2, 16)
    t = 6
    changed = idx.clone()
    changed[:, t + 1 :] = (idx[:, t + 1 :] + 1) % V  # every later token differs
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])  # the change did reach later ones


def reference_logits(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """The GPT forward written out with plain ops and an explicit causal mask."""
    cfg, sd = model.config, model.state_dict()
    B, T = idx.shape
    C, H = cfg.n_embd, cfg.n_head

    def ln(x: torch.Tensor, name: str) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, (C,), sd[f"{name}.weight"], sd.get(f"{name}.bias"))

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:
        return torch.nn.functional.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))

    x = sd["transformer.wte.weight"][idx] + sd["transformer.wpe.weight"][:T]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}"
        q, k, v = linear(ln(x, f"{p}.ln_1"), f"{p}.attn.c_attn").split(C, dim=2)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + linear(y, f"{p}.attn.c_proj")
        h = torch.nn.functional.gelu(linear(ln(x, f"{p}.ln_2"), f"{p}.mlp.c_fc"))
        x = x + linear(h, f"{p}.mlp.c_proj")
    return ln(x, "transformer.ln_f") @ sd["transformer.wte.weight"].T


@pytest.mark.parametrize("bias", [False, True])
def test_matches_a_plain_reference_forward(bias: bool) -> None:
    model = tiny(bias=bias).eval()
    with torch.no_grad():  # larger weights than at init, so that every path matters
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    idx = tokens(2, 12)
    logits, _ = model(idx)
    torch.testing.assert_close(logits, reference_logits(model, idx), rtol=1e-4, atol=1e-4)


def test_lm_head_is_tied_to_token_embedding() -> None:
    model = tiny()
    assert model.lm_head.weight is model.transformer.wte.weight
    # one tensor in the parameter list and the count, not two
    n_unique = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    assert model.num_params(non_embedding=False) == n_unique
    assert len([p for p in model.parameters() if p is model.lm_head.weight]) == 1


@pytest.mark.parametrize("bias", [False, True])
def test_param_groups_cover_every_parameter_once(bias: bool) -> None:
    model = tiny(bias=bias)
    decay, no_decay = model.param_groups(weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    assert any(p is model.transformer.wte.weight for p in decay["params"])
    torch.optim.AdamW(model.param_groups(0.1), lr=1e-3)  # accepted as is
    with pytest.raises(ValueError, match="weight_decay"):
        model.param_groups(-1.0)


def test_init_std_of_residual_projections() -> None:
    model = tiny(n_layer=4, n_embd=128, n_head=4)
    residual_std = 0.02 / math.sqrt(2 * 4)
    for block in model.transformer.h:
        for w in (block.attn.c_proj.weight, block.mlp.c_proj.weight):
            assert w.std().item() == pytest.approx(residual_std, rel=0.1)
        assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.transformer.wpe.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_biases_start_at_zero() -> None:
    model = tiny(bias=True)
    biases = [p for n, p in model.named_parameters() if n.endswith(".bias")]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)


def test_overfits_one_batch() -> None:
    model = tiny()
    idx, targets = tokens(4, 16), tokens(4, 16, seed=2)
    opt = torch.optim.AdamW(model.param_groups(0.0), lr=1e-2)
    _, first = model(idx, targets)
    for _ in range(40):
        _, loss = model(idx, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _, last = model(idx, targets)
    assert last.item() < 0.5 * first.item()


def test_generate_is_reproducible_with_a_seeded_generator() -> None:
    model = tiny()
    prompt = tokens(2, 3)

    def sample(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return model.generate(prompt, 12, temperature=1.5, generator=g)

    first = sample(7)
    assert first.shape == (2, 15) and first.dtype == torch.int64
    assert torch.equal(first[:, :3], prompt)
    assert torch.equal(first, sample(7))
    assert not torch.equal(first, sample(8))


def test_generate_top_k_1_is_greedy() -> None:
    model = tiny()
    prompt = tokens(2, 3)
    greedy = model.generate(prompt, 10, temperature=0.0)
    top1 = model.generate(prompt, 10, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(greedy, top1)
    # greedy really is the argmax of the model's next-token logits
    logits, _ = model(greedy[:, :-1])
    assert torch.equal(logits[:, -1].argmax(-1), greedy[:, -1])


def test_generate_crops_to_block_size() -> None:
    model = tiny()  # block_size 16
    long_prompt = tokens(1, 40)
    out = model.generate(long_prompt, 8, temperature=0.0)
    assert out.shape == (1, 48)
    # the same as continuing the last block_size tokens only, not the first ones
    last = model.generate(long_prompt[:, -16:], 8, temperature=0.0)
    first = model.generate(long_prompt[:, :16], 8, temperature=0.0)
    assert torch.equal(out[:, 40:], last[:, 16:])
    assert not torch.equal(out[:, 40:], first[:, 16:])


def test_generate_stops_at_eos_and_restores_mode() -> None:
    model = tiny(dropout=0.1).train()
    prompt = tokens(1, 3)
    first = model.generate(prompt, 1, temperature=0.0)[0, -1].item()
    out = model.generate(prompt, 10, temperature=0.0, eos_id=first)
    assert out.shape == (1, 4) and out[0, -1].item() == first
    assert model.training
    with pytest.raises(ValueError, match="single prompt"):
        model.generate(tokens(2, 3), 5, eos_id=first)


def test_forward_longer_than_block_size_raises() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="block_size 16"):
        model(tokens(1, 17))
    model(tokens(1, 16))  # the limit itself is fine


def test_same_seed_gives_identical_state_dicts() -> None:
    a, b, c = tiny(seed=5).state_dict(), tiny(seed=5).state_dict(), tiny(seed=6).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("bias", [False, True])
def test_num_params_and_flops_per_token(bias: bool) -> None:
    L, H, C, T = 2, 2, 32, 16
    model = tiny(bias=bias)
    per_block = 12 * C * C + 2 * C + (11 * C if bias else 0)  # 4 matmuls + 2 LayerNorms
    ln_f = C + (C if bias else 0)
    total = V * C + T * C + L * per_block + ln_f
    assert model.num_params(non_embedding=False) == total
    assert model.num_params() == total - T * C
    assert model.flops_per_token() == 6 * (total - T * C) + 12 * L * H * (C // H) * T


def test_build_model_resolves_vocab_size() -> None:
    cfg = GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8)  # vocab_size 0
    explicit = GPTConfig(n_layer=1, n_embd=16, vocab_size=128)
    assert build_model(cfg, vocab_size=100).lm_head.weight.shape == (100, 16)
    assert build_model(explicit, vocab_size=100).config.vocab_size == 128  # padded vocab kept
    with pytest.raises(ValueError, match="vocab_size is 0"):
        build_model(cfg)
    with pytest.raises(ValueError, match="vocab_size is 0"):
        GPT(cfg)
    with pytest.raises(ValueError, match="vocabulary 200 larger than the model's 128"):
        build_model(explicit, vocab_size=200)


def test_generate_no_repeat_ngram_never_repeats_an_ngram() -> None:
    model = tiny()
    prompt = tokens(1, 3)
    # Greedy decoding of an untrained model falls into a loop; the ban breaks every one.
    loop = model.generate(prompt, 40, temperature=0.0)[0].tolist()
    trigrams = [tuple(loop[i : i + 3]) for i in range(len(loop) - 2)]
    assert len(set(trigrams)) < len(trigrams)
    out = model.generate(prompt, 40, temperature=0.0, no_repeat_ngram=3)[0].tolist()
    trigrams = [tuple(out[i : i + 3]) for i in range(len(out) - 2)]
    assert len(set(trigrams)) == len(trigrams) and len(out) == 43


def test_generate_repetition_penalty_and_top_p() -> None:
    model = tiny()
    prompt = tokens(1, 3)
    plain = model.generate(prompt, 30, temperature=0.0)[0, 3:].tolist()
    guarded = model.generate(prompt, 30, temperature=0.0, repetition_penalty=3.0)[0, 3:].tolist()
    assert len(set(guarded)) > len(set(plain))
    # A tiny nucleus keeps only the most likely token: the same as greedy.
    g = torch.Generator().manual_seed(0)
    nucleus = model.generate(prompt, 10, temperature=1.0, top_p=1e-6, generator=g)
    assert torch.equal(nucleus, model.generate(prompt, 10, temperature=0.0))
    for bad in ({"top_p": 0.0}, {"top_p": 1.5}, {"repetition_penalty": 0.5}):
        with pytest.raises(ValueError):
            model.generate(prompt, 1, **bad)
    with pytest.raises(ValueError, match="no_repeat_ngram"):
        model.generate(prompt, 1, no_repeat_ngram=-1)
