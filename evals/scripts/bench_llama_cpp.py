"""llama.cpp side of bench-models: greedy generation timing on a GGUF.

Usage: python bench_llama_cpp.py MODEL.gguf THREADS TOKENS PROMPT_TEXT_FILE
Prints one JSON line: prompt tokens, prefill and decode seconds, tokens.
The prompt file holds the chat-templated prompt, exactly as candle gets it.
"""
import json
import sys
import time

from llama_cpp import Llama

path, threads, tokens, prompt_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
prompt = open(prompt_file, encoding="utf-8").read()
llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads,
            n_batch=512, verbose=False, seed=0)
ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
best = None
for _ in range(3):  # the first pass warms caches; report the fastest
    llm.reset()
    out = []
    t0 = time.perf_counter()
    prefill = None
    for tok in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0, reset=True):
        if prefill is None:
            prefill = time.perf_counter() - t0
        out.append(tok)
        if len(out) >= tokens:
            break
    total = time.perf_counter() - t0
    r = {"prompt_tokens": len(ids), "output_tokens": len(out), "prefill_s": prefill,
         "decode_s": total - prefill}
    if best is None or total < best["prefill_s"] + best["decode_s"]:
        best = r
print(json.dumps(best))
