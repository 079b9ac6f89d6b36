"""PyTorch GPU peer for bench/gpu: the same Llama-style model as dipaco_bench_cuda_train (the
model class of bench/engine/torch_train.py, with attention through
F.scaled_dot_product_attention, i.e. flash attention, as people train it), bf16 autocast with
fp32 master weights, fused AdamW, grad clip 1.0. Prints one JSON object: tokens/s, MFU.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "engine")]  # bundled beside it, or in the tree
import torch_train  # noqa: E402


def sdpa_block_forward(self, x, cos, sin, mask):
    B, T, C = x.shape
    h = self.input_layernorm(x)
    q = self.q_proj(h).view(B, T, self.h, self.hd).transpose(1, 2)
    k = self.k_proj(h).view(B, T, self.kvh, self.hd).transpose(1, 2)
    v = self.v_proj(h).view(B, T, self.kvh, self.hd).transpose(1, 2)
    q = q * cos[:T] + torch_train.rotate_half(q) * sin[:T]
    k = k * cos[:T] + torch_train.rotate_half(k) * sin[:T]
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kvh != self.h)
    x = x + self.o_proj(y.transpose(1, 2).reshape(B, T, self.h * self.hd))
    h = self.post_attention_layernorm(x)
    return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--d-model", type=int, default=1024)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=16)
    p.add_argument("--d-ff", type=int, default=2816)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--compile", action="store_true")
    a = p.parse_args()
    torch_train.Block.forward = sdpa_block_forward
    torch.manual_seed(1)
    dev = torch.device("cuda")
    model = torch_train.Llama(a).to(dev)
    run = torch.compile(model) if a.compile else model
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    batches = [tuple(t.to(dev) for t in torch_train.synthetic_batch(s, a))
               for s in range(a.warmup + a.steps)]
    losses = []
    start = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        x, y = batches[step]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = run(x)
        loss = F.cross_entropy(logits.float().view(-1, a.vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())  # a host sync per step, as dipaco's trainer has
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    tokens = a.steps * a.batch * a.seq
    n_params = sum(p.numel() for p in model.parameters())
    matmul_weights = n_params - a.vocab * a.d_model - a.d_model * (2 * a.layers + 1)
    flops_per_token = 6 * matmul_weights + 6 * a.layers * a.seq * a.d_model
    tflops = flops_per_token * tokens / elapsed / 1e12
    print(json.dumps({
        "engine": "pytorch" + ("+compile" if a.compile else ""), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(), "params": n_params, "steps": a.steps,
        "tokens_per_s": round(tokens / elapsed, 1), "step_ms": round(1000 * elapsed / a.steps, 2),
        "model_tflops": round(tflops, 2), "mfu": round(tflops / a.peak_tflops, 4),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}))


if __name__ == "__main__":
    main()
