"""Independent reference for dipaco's engine: a Llama decoder written directly in PyTorch.

Usage: torch_reference.py IN.safetensors OUT.safetensors
IN holds the model's parameters under Hugging Face Llama names, the batch ("inputs",
"targets", int32 [B, T], -1 = ignore) and the config in __metadata__["model_config"]
("vocab_size=.. d_model=.."). OUT receives float64 "logits" [B, T, V], "loss" [] and
"grad.<name>" for every parameter. Computed in float64.

With __metadata__["train_lrs"] = "lr1,lr2,..." it instead takes one torch.optim.AdamW step per
learning rate on the same batch (decay on 2-D weights only, betas/eps/weight_decay/grad_clip from
the metadata, clip_grad_norm_ before each step) and writes the final parameters as "<name>".
"""
import json
import math
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32, "I64": torch.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=DTYPES[info["dtype"]])
        tensors[name] = t.reshape(info["shape"])
    return tensors, meta


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().to(torch.float64).numpy().tobytes()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def forward(p, cfg, inputs):
    B, T = inputs.shape
    C, H, KVH = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    hd = C // H
    eps = cfg["norm_eps"]
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)  # [T, hd/2]
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x = p["model.embed_tokens.weight"][inputs.long()]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(cfg["n_layers"]):
        pre = f"model.layers.{i}."
        h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = (h @ p[pre + "self_attn.q_proj.weight"].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ p[pre + "self_attn.k_proj.weight"].T).view(B, T, KVH, hd).transpose(1, 2)
        v = (h @ p[pre + "self_attn.v_proj.weight"].T).view(B, T, KVH, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p[pre + "self_attn.o_proj.weight"].T
        h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        g = h @ p[pre + "mlp.gate_proj.weight"].T
        u = h @ p[pre + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ p[pre + "mlp.down_proj.weight"].T
    x = rms_norm(x, p["model.norm.weight"], eps)
    return x @ p["lm_head.weight"].T


def train(params, cfg, meta, inputs, targets):
    decay = [p for p in params.values() if p.dim() == 2]
    no_decay = [p for p in params.values() if p.dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(meta["weight_decay"])},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=1.0, betas=(float(meta["beta1"]), float(meta["beta2"])), eps=float(meta["eps"]))
    for lr in meta["train_lrs"].split(","):
        for group in opt.param_groups:
            group["lr"] = float(lr)
        logits = forward(params, cfg, inputs)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, cfg["vocab_size"]), targets.reshape(-1).long(), ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), float(meta["grad_clip"]))
        opt.step()


def main():
    torch.manual_seed(0)
    tensors, meta = read_safetensors(sys.argv[1])
    cfg = {}
    for item in meta["model_config"].split():
        key, value = item.split("=")
        cfg[key] = float(value) if key in ("rope_theta", "norm_eps") else int(value)
    inputs, targets = tensors.pop("inputs"), tensors.pop("targets")
    params = {k: v.to(torch.float64).requires_grad_(True) for k, v in tensors.items()}
    if "train_lrs" in meta:
        train(params, cfg, meta, inputs, targets)
        write_safetensors(sys.argv[2], params)
        return
    logits = forward(params, cfg, inputs)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, cfg["vocab_size"]), targets.reshape(-1).long(), ignore_index=-1)
    loss.backward()
    out = {"logits": logits, "loss": loss.reshape(())}
    for name, p in params.items():
        out["grad." + name] = p.grad
    write_safetensors(sys.argv[2], out)


if __name__ == "__main__":
    main()
