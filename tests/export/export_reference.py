"""Independent check of a dipaco export: a Llama forward in PyTorch (float64), loaded
(1) from the Hugging Face directory (config.json + model.safetensors), with HF's "rotate_half"
    RoPE, as transformers' LlamaForCausalLM computes it, and
(2) from the GGUF file, parsed here from the GGUF v3 spec, with llama.cpp's RoPE for the llama
    architecture (rotation of adjacent pairs 2i, 2i+1 by pos * freq_base^(-2i/head_dim)).

Usage: export_reference.py HF_DIR GGUF_FILE TOKENS OUT_DIR
TOKENS is comma-separated ids. Writes OUT_DIR/hf.f64 and OUT_DIR/gguf.f64: the logits [T, V]
as little-endian float64. Run with Debian's /usr/bin/python3 (python3-torch).
"""
import json
import math
import os
import struct
import sys

import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]).to(torch.float64)
    return out


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        vals = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals[0] if len(vals) == 1 else vals

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(self, vtype):
        if vtype == 8:
            return self.string()
        if vtype == 9:
            item_type, n = self.take("I"), self.take("Q")
            return [self.value(item_type) for _ in range(n)]
        return self.take(self.SCALARS[vtype])


def read_gguf(path):
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    assert data[:4] == b"GGUF"
    r.pos = 4
    version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    assert version == 3, version
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        kv[key] = r.value(r.take("I"))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.take("I")
        ne = [r.take("Q") for _ in range(n_dims)]
        infos.append((name, ne, r.take("I"), r.take("Q")))
    align = kv.get("general.alignment", 32)
    start = (r.pos + align - 1) // align * align
    tensors = {}
    for name, ne, ggml_type, offset in infos:
        n = math.prod(ne)
        assert ggml_type == 0, f"{name}: this reference reads F32 GGUF files only"
        t = torch.frombuffer(bytearray(data[start + offset:start + offset + 4 * n]), dtype=torch.float32)
        tensors[name] = t.reshape(list(reversed(ne))).to(torch.float64)
    return kv, tensors


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def attention(q, k, v, n_heads, n_kv_heads):
    # q [H, T, hd], k/v [KVH, T, hd]; query head h reads kv head h // (H / KVH).
    T, hd = q.shape[1], q.shape[2]
    k = k.repeat_interleave(n_heads // n_kv_heads, dim=0)
    v = v.repeat_interleave(n_heads // n_kv_heads, dim=0)
    scores = q @ k.transpose(1, 2) / math.sqrt(hd)
    scores = scores + torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    return (scores.softmax(-1) @ v).transpose(0, 1).reshape(T, n_heads * hd)


def llama(tokens, w, names, n_layers, H, KVH, eps, rope):
    x = w[names["embed"]][tokens]
    T = len(tokens)
    for i in range(n_layers):
        n = lambda key: w[names[key].format(i)]
        h = rms_norm(x, n("attn_norm"), eps)
        q = (h @ n("q").T).view(T, H, -1).transpose(0, 1)
        k = (h @ n("k").T).view(T, KVH, -1).transpose(0, 1)
        v = (h @ n("v").T).view(T, KVH, -1).transpose(0, 1)
        x = x + attention(rope(q), rope(k), v, H, KVH) @ n("o").T
        h = rms_norm(x, n("mlp_norm"), eps)
        x = x + (torch.nn.functional.silu(h @ n("gate").T) * (h @ n("up").T)) @ n("down").T
    return rms_norm(x, w[names["norm"]], eps) @ w[names["head"]].T


def angles(T, hd, theta):
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    return torch.outer(torch.arange(T, dtype=torch.float64), inv)  # [T, hd/2]


def rope_half_split(theta):
    def apply(x):  # x [heads, T, hd]: HF rotate_half
        a = angles(x.shape[1], x.shape[2], theta)
        cos, sin = torch.cat((a, a), -1).cos(), torch.cat((a, a), -1).sin()
        half = x.shape[2] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin
    return apply


def rope_adjacent_pairs(theta):
    def apply(x):  # ggml rope mode 0: pairs (2i, 2i+1)
        a = angles(x.shape[1], x.shape[2], theta)
        cos, sin = a.cos(), a.sin()
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out
    return apply


def main():
    hf_dir, gguf_path, token_text, out_dir = sys.argv[1:5]
    tokens = torch.tensor([int(t) for t in token_text.split(",")])

    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
    w = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    L = "model.layers.{}."
    hf_names = {"embed": "model.embed_tokens.weight", "norm": "model.norm.weight",
                "head": "lm_head.weight", "attn_norm": L + "input_layernorm.weight",
                "q": L + "self_attn.q_proj.weight", "k": L + "self_attn.k_proj.weight",
                "v": L + "self_attn.v_proj.weight", "o": L + "self_attn.o_proj.weight",
                "mlp_norm": L + "post_attention_layernorm.weight",
                "gate": L + "mlp.gate_proj.weight", "up": L + "mlp.up_proj.weight",
                "down": L + "mlp.down_proj.weight"}
    hf = llama(tokens, w, hf_names, cfg["num_hidden_layers"], cfg["num_attention_heads"],
               cfg["num_key_value_heads"], cfg["rms_norm_eps"], rope_half_split(cfg["rope_theta"]))

    kv, g = read_gguf(gguf_path)
    assert kv["general.architecture"] == "llama"
    B = "blk.{}."
    gguf_names = {"embed": "token_embd.weight", "norm": "output_norm.weight", "head": "output.weight",
                  "attn_norm": B + "attn_norm.weight", "q": B + "attn_q.weight",
                  "k": B + "attn_k.weight", "v": B + "attn_v.weight", "o": B + "attn_output.weight",
                  "mlp_norm": B + "ffn_norm.weight", "gate": B + "ffn_gate.weight",
                  "up": B + "ffn_up.weight", "down": B + "ffn_down.weight"}
    gg = llama(tokens, g, gguf_names, kv["llama.block_count"], kv["llama.attention.head_count"],
               kv["llama.attention.head_count_kv"], kv["llama.attention.layer_norm_rms_epsilon"],
               rope_adjacent_pairs(kv["llama.rope.freq_base"]))

    for name, logits in (("hf", hf), ("gguf", gg)):
        with open(os.path.join(out_dir, name + ".f64"), "wb") as f:
            f.write(logits.contiguous().numpy().astype("<f8").tobytes())


if __name__ == "__main__":
    main()
