"""lgd's weighted kNN (DINO's protocol) against a brute-force computation: for every query,
sort all training samples by cosine similarity, take the k best, and add exp(sim / T) to the
vote of each neighbour's class."""
import math
import os
import subprocess
import sys
import tempfile

import torch

TOOL = sys.argv[1]


def brute_force(train_x, train_y, query_x, num_classes, k, t):
    train = [[float(v) for v in row] for row in train_x]
    out = []
    for q in query_x.tolist():
        qn = math.sqrt(sum(v * v for v in q))
        sims = []
        for row, y in zip(train, train_y.tolist()):
            rn = math.sqrt(sum(v * v for v in row))
            sims.append((sum(a * b for a, b in zip(q, row)) / (qn * rn), y))
        sims.sort(key=lambda s: -s[0])
        votes = [0.0] * num_classes
        for sim, y in sims[:k]:
            votes[y] += math.exp(sim / t)
        out.append(votes)
    return torch.tensor(out, dtype=torch.float64)


def check(name, n_train, n_query, dim, num_classes, k, t, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g)
    train_y = torch.randint(num_classes, (n_train,), generator=g)
    train_x = centres[train_y] + 0.8 * torch.randn(n_train, dim, generator=g)
    query_y = torch.randint(num_classes, (n_query,), generator=g)
    query_x = (centres[query_y] + 0.8 * torch.randn(n_query, dim, generator=g)) * 3.0
    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in.pth"), os.path.join(d, "out.pth")
        torch.save({"train_x": train_x, "train_y": train_y, "query_x": query_x,
                    "num_classes": torch.tensor(num_classes)}, inp)
        subprocess.run([TOOL, inp, out, str(k), str(t)], check=True)
        got = torch.load(out, weights_only=True)["scores"].double()
    want = brute_force(train_x, train_y, query_x, num_classes, k, t)
    rel = ((got - want).abs() / want.abs().clamp_min(1e-30)).max().item()
    assert got.shape == want.shape, (got.shape, want.shape)
    assert rel < 1e-4, f"{name}: max relative difference {rel}"
    assert torch.equal(got.argmax(1), want.argmax(1)), name
    print(f"{name}: {n_query} queries x {n_train} train, k {k}, T {t}: max rel diff {rel:.2e}")


check("dino defaults", 300, 40, 16, 10, 20, 0.07, 0)
check("k above n", 15, 9, 8, 3, 20, 0.5, 1)  # every training sample votes
check("k 1", 200, 30, 4, 5, 1, 0.1, 2)
print("ok")
