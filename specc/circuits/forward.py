"""A transformer forward pass written out node by node, with a probe at every destination input.

Note [Gradient probes]: the residual stream is the sum of node outputs (the input embedding,
every attention head, every MLP). Each destination (a head's q, k or v input, an MLP's input, the
logits) reads its own copy of that sum plus a probe tensor, zero unless patching. The gradient of
a metric with respect to the probes is the gradient at every destination input, by autograd alone:
no hooks, so the same code runs on CPU, CUDA and XLA. Patching an edge u -> v adds z'_u - z_u to
probe v. The same weights as the Hugging Face model are used (views, not copies), and with zero
probes the logits equal the model's own (a test checks this for every family).
"""

from __future__ import annotations

import math
from typing import Any

import attrs


@attrs.frozen
class Graph:
    """Source nodes, destinations and which sources feed which destinations."""

    layers: int
    heads: int
    parallel: bool
    sources: tuple[str, ...]
    dests: tuple[str, ...]

    @classmethod
    def build(cls, layers: int, heads: int, parallel: bool) -> Graph:
        sources = ["input"]
        dests: list[str] = []
        for layer in range(layers):
            sources += [f"a{layer}.h{h}" for h in range(heads)] + [f"m{layer}"]
            for kind in ("q", "k", "v"):
                dests += [f"a{layer}.h{h}<{kind}>" for h in range(heads)]
            dests.append(f"m{layer}")
        dests.append("logits")
        return cls(layers, heads, parallel, tuple(sources), tuple(dests))

    def source_layer(self, name: str) -> int:
        """Input counts as layer -1 here (before every layer)."""
        return -1 if name == "input" else int(name[1:].split(".")[0])

    def upstream(self) -> Any:
        """Bool matrix [source, dest]: True where the edge exists."""
        import torch

        mask = torch.zeros(len(self.sources), len(self.dests), dtype=torch.bool)
        for j, d in enumerate(self.dests):
            if d == "logits":
                mask[:, j] = True
                continue
            layer = int(d[1:].split(".")[0].split("<")[0])
            is_mlp = d.startswith("m")
            for i, s in enumerate(self.sources):
                if s == "input":
                    mask[i, j] = True
                    continue
                sl = self.source_layer(s)
                if sl < layer:
                    mask[i, j] = True
                elif sl == layer and is_mlp and s.startswith("a") and not self.parallel:
                    mask[i, j] = True  # sequential blocks: the MLP reads this layer's heads
        return mask


def _rotate_half(x: Any) -> Any:
    import torch

    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class CircuitModel:
    """Node-by-node forward of a gpt2, gpt_neox (Pythia) or llama causal LM."""

    def __init__(self, model: Any) -> None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.model = base
        cfg = base.config
        self.kind = cfg.model_type
        if self.kind not in ("gpt2", "gpt_neox", "llama"):
            msg = f"circuit discovery supports gpt2, gpt_neox and llama models, not {self.kind}"
            raise ValueError(msg)
        self.d = cfg.hidden_size
        self.H = cfg.num_attention_heads
        self.hd = self.d // self.H
        self.L = cfg.num_hidden_layers
        parallel = self.kind == "gpt_neox" and bool(getattr(cfg, "use_parallel_residual", True))
        self.graph = Graph.build(self.L, self.H, parallel)
        self.n_src, self.n_dst = len(self.graph.sources), len(self.graph.dests)

    # ------------------------------------------------------------ family-specific pieces
    def _blocks(self) -> Any:
        m = self.model
        return {"gpt2": lambda: m.transformer.h, "gpt_neox": lambda: m.gpt_neox.layers,
                "llama": lambda: m.model.layers}[self.kind]()

    def embed(self, input_ids: Any) -> Any:
        import torch

        m = self.model
        if self.kind == "gpt2":
            pos = torch.arange(input_ids.shape[1], device=input_ids.device)
            return m.transformer.wte(input_ids) + m.transformer.wpe(pos)[None]
        if self.kind == "gpt_neox":
            return m.gpt_neox.embed_in(input_ids)
        return m.model.embed_tokens(input_ids)

    def _qkv(self, block: Any) -> tuple[Any, ...]:
        """Per-head projection weights (H, d, hd) and biases (H, hd) for q, k and v."""
        H, hd, d = self.H, self.hd, self.d
        if self.kind == "gpt2":
            W, b = block.attn.c_attn.weight, block.attn.c_attn.bias  # Conv1D: x @ W, W (d, 3d)
            ws = [W[:, i * d:(i + 1) * d].reshape(d, H, hd).permute(1, 0, 2) for i in range(3)]
            bs = [b[i * d:(i + 1) * d].reshape(H, hd) for i in range(3)]
            return (*ws, *bs)
        if self.kind == "gpt_neox":
            lin = block.attention.query_key_value  # out features ordered (head, [q k v], hd)
            W = lin.weight.reshape(H, 3, hd, d)
            b = lin.bias.reshape(H, 3, hd)
            return (*(W[:, i].transpose(1, 2) for i in range(3)),
                    *(b[:, i] for i in range(3)))
        att = block.self_attn
        kv = att.k_proj.weight.shape[0] // hd
        group = H // kv
        wq = att.q_proj.weight.reshape(H, hd, d).transpose(1, 2)
        wk = att.k_proj.weight.reshape(kv, hd, d).transpose(1, 2).repeat_interleave(group, 0)
        wv = att.v_proj.weight.reshape(kv, hd, d).transpose(1, 2).repeat_interleave(group, 0)
        zero = wq.new_zeros(H, hd)
        return wq, wk, wv, zero, zero, zero

    def _out(self, block: Any) -> tuple[Any, Any]:
        """Per-head output projection (H, hd, d) and the (constant) output bias."""
        H, hd, d = self.H, self.hd, self.d
        if self.kind == "gpt2":
            W = block.attn.c_proj.weight  # Conv1D (d_in, d_out)
            return W.reshape(H, hd, d), block.attn.c_proj.bias
        lin = block.attention.dense if self.kind == "gpt_neox" else block.self_attn.o_proj
        W = lin.weight.t().reshape(H, hd, d)
        return W, (lin.bias if lin.bias is not None else W.new_zeros(d))

    def _norms(self, block: Any) -> tuple[Any, Any]:
        if self.kind == "gpt2":
            return block.ln_1, block.ln_2
        return block.input_layernorm, block.post_attention_layernorm

    def _final(self) -> tuple[Any, Any]:
        m = self.model
        head = m.get_output_embeddings()
        if self.kind == "gpt2":
            return m.transformer.ln_f, head
        if self.kind == "gpt_neox":
            return m.gpt_neox.final_layer_norm, head
        return m.model.norm, head

    def _rotary(self, x: Any, T: int) -> tuple[Any, Any, int] | None:
        import torch

        pos = torch.arange(T, device=x.device)[None]
        if self.kind == "gpt_neox":
            cos, sin = self.model.gpt_neox.rotary_emb(x, pos)
            return cos, sin, cos.shape[-1]
        if self.kind == "llama":
            cos, sin = self.model.model.rotary_emb(x, pos)
            return cos, sin, cos.shape[-1]
        return None

    def _apply_rotary(self, t: Any, rot: tuple[Any, Any, int] | None) -> Any:
        import torch

        if rot is None:
            return t
        cos, sin, n = rot  # cos: (1, T, n) -> broadcast over (H, B, T, n)
        cos, sin = cos[None].to(t.dtype), sin[None].to(t.dtype)
        head, rest = t[..., :n], t[..., n:]
        return torch.cat((head * cos + _rotate_half(head) * sin, rest), dim=-1)

    # ------------------------------------------------------------ the forward pass
    def forward(self, input_ids: Any, probes: Any | None = None, embeds: Any | None = None,
                ) -> tuple[Any, Any]:
        """Logits (B, T, V) and every source node's output (n_src, B, T, d).

        ``probes`` (n_dst, B, T, d) is added to each destination's input; ``embeds`` replaces
        the input node's output (EAP-IG interpolates it).
        """
        import torch

        z_in = self.embed(input_ids) if embeds is None else embeds
        B, T, d = z_in.shape
        H, hd = self.H, self.hd
        if probes is None:
            probes = z_in.new_zeros(self.n_dst, B, T, d)
        outs = [z_in]
        resid = z_in
        mask = torch.full((T, T), float("-inf"), device=z_in.device, dtype=z_in.dtype).triu(1)
        rot = self._rotary(z_in, T)
        per_layer = 3 * H + 1
        for layer, block in enumerate(self._blocks()):
            base = layer * per_layer
            ln_a, ln_m = self._norms(block)
            wq, wk, wv, bq, bk, bv = self._qkv(block)
            x = resid[None] + probes[base: base + 3 * H].view(3, H, B, T, d)
            x = ln_a(x)
            q = torch.einsum("hbtd,hde->hbte", x[0], wq) + bq[:, None, None]
            k = torch.einsum("hbtd,hde->hbte", x[1], wk) + bk[:, None, None]
            v = torch.einsum("hbtd,hde->hbte", x[2], wv) + bv[:, None, None]
            q, k = self._apply_rotary(q, rot), self._apply_rotary(k, rot)
            att = torch.einsum("hbte,hbse->hbts", q, k) / math.sqrt(hd) + mask
            att = att.softmax(-1)
            a = torch.einsum("hbts,hbse->hbte", att, v)
            wo, bo = self._out(block)
            heads = torch.einsum("hbte,hed->hbtd", a, wo)  # (H, B, T, d)
            outs.extend(heads.unbind(0))
            mlp_in = resid if self.graph.parallel else resid + heads.sum(0) + bo
            m_out = block.mlp(ln_m(mlp_in + probes[base + 3 * H]))
            outs.append(m_out)
            resid = resid + heads.sum(0) + bo + m_out
        ln_f, head = self._final()
        logits = head(ln_f(resid + probes[-1]))
        return logits, torch.stack(outs)
