"""A small CLIP-style dual encoder for tests: a conv + BatchNorm image tower and a bag-of-
embeddings text tower, both projecting to `dim`."""
import torch
import torch.nn.functional as F


class TinyClip(torch.nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.bn = torch.nn.BatchNorm2d(8)
        self.proj = torch.nn.Linear(8, dim)
        self.embed = torch.nn.Embedding(vocab, 32)
        self.text_proj = torch.nn.Linear(32, dim)

    def encode_image(self, x):
        return self.proj(F.relu(self.bn(self.conv(x))).mean((2, 3)))

    def encode_text(self, tokens):
        mask = (tokens != 0).float().unsqueeze(-1)
        pooled = (self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.text_proj(torch.tanh(pooled))
