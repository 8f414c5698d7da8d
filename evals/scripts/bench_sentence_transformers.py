"""sentence-transformers side of bench-models: sentences/s on CPU.

Usage: python bench_sentence_transformers.py MODEL_DIR THREADS BATCH SENTENCES.json
Prints one JSON line with the count and seconds of the timed pass.
"""
import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model_dir, threads, batch, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
sentences = json.load(open(path, encoding="utf-8"))
model = SentenceTransformer(model_dir, device="cpu")
model.encode(sentences[:batch], batch_size=batch, normalize_embeddings=True)  # warm-up
t0 = time.perf_counter()
model.encode(sentences, batch_size=batch, normalize_embeddings=True)
print(json.dumps({"sentences": len(sentences), "seconds": time.perf_counter() - t0}))
