"""An image folder of 4 classes of solid colours around one hue per class (PNG), and torchvision's
view of it: a solid image stays solid under resize + center crop, so the eval view of an image
is its colour, normalised. Shared by the `lgd eval` tests."""
import numpy as np
import torch
from PIL import Image

CLASSES = ["a_red", "b_green", "c_blue", "d_yellow"]
BASE = [(210, 40, 40), (40, 200, 60), (50, 60, 210), (215, 205, 40)]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_images(root, per_class, seed):
    """per_class PNGs per class under root/<class>/; returns (colours [N, 3] uint8, labels [N])."""
    rng = np.random.default_rng(seed)
    colours, labels = [], []
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            colour = np.clip(np.array(BASE[c]) + rng.integers(-30, 31, 3), 0, 255).astype(np.uint8)
            Image.fromarray(np.tile(colour, (40, 44, 1))).save(root / name / f"{i:03d}.png")
            colours.append(colour)
            labels.append(c)
    return np.stack(colours), np.array(labels)


def eval_view(colours, size):
    """The normalised eval-view input of solid images of these colours: [N, 3, size, size]."""
    x = torch.tensor(colours, dtype=torch.float32) / 255.0
    x = (x - torch.tensor(MEAN)) / torch.tensor(STD)
    return x[:, :, None, None].expand(-1, -1, size, size).contiguous()


def torchvision_features(model, colours, size):
    with torch.no_grad():
        return model(eval_view(colours, size))
