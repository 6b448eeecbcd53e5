"""Batched, left-padded generation: tokens per second at generation batch sizes 1, 16 and 64,
and whether the greedy answers are the same at every size.

    .venv/bin/python benchmarks/generation_batching.py

The causal-LM trainers generate (for validation and test figures, review outputs, and generation
metrics while training) through ``tuneloop.plugins.trainers.generation.generate_answers``: prompts
grouped by token length, left-padded, ``generation_batch_size`` at a time. This runs it on a
random GPT-2 (4 layers, width 256: the weights do not matter for speed) over 64 prompts of 4 to
40 tokens, 32 new tokens each (eos suppressed, so every answer is full length), on one CPU thread.
Targets: the greedy answers identical at every batch size; batch 16 at least 4x the tokens per
second of batch 1.
"""

from __future__ import annotations

import os
import random
import time

PROMPTS = 64
NEW_TOKENS = 32
SIZES = (1, 16, 64)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tuneloop.plugins.trainers import causal_lm, generation
    from tuneloop.testing import tiny_tokenizer

    torch.set_num_threads(1)
    words = [f"w{number}" for number in range(500)]
    rng = random.Random(0)
    prompts = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 40)))
               for _ in range(PROMPTS)]
    tokenizer = tiny_tokenizer(prompts + [" ".join(words)], style="gpt2")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tokenizer), n_positions=256, n_embd=256, n_layer=4, n_head=4,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)).eval()
    model.generation_config.suppress_tokens = [tokenizer.eos_token_id]
    ids = [causal_lm.prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    options = generation.GenerationOptions(max_new_tokens=NEW_TOKENS)

    answers, speed = {}, {}
    for size in SIZES:
        started = time.perf_counter()
        with torch.inference_mode():
            found = generation.generate_answers(model, tokenizer, ids, options,
                                                new_tokens=NEW_TOKENS, batch_size=size)
        seconds = time.perf_counter() - started
        answers[size] = [answer[0][0] for answer in found]
        speed[size] = PROMPTS * NEW_TOKENS / seconds
        print(f"generation_batch_size {size:3d}: {seconds:6.2f} s, {speed[size]:7.1f} tokens/s "
              f"({speed[size] / speed[SIZES[0]]:.1f}x batch 1)")
    same = all(answers[size] == answers[SIZES[0]] for size in SIZES)
    print(f"greedy answers identical at every batch size: {same} (target: True)")
    print(f"batch 16 / batch 1: {speed[16] / speed[1]:.1f}x (target: >= 4x)")


if __name__ == "__main__":
    main()
