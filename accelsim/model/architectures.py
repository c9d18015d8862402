"""DIET-SNN architectures (the authors' configurations), built as layer graphs.

Every builder returns an :class:`~accelsim.model.network.Architecture`; channel counts scale with
``width`` so that paper-shaped networks can be trained on two CPU cores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from accelsim.model.network import INPUT, Architecture, Layer, Projection, Shape, pooled_shape

POOL = "A"

# Authors' channel plans (docs/design.md §7); "A" is a 2x2 average pool. vgg16 is the CIFAR
# plan: 4 pools, so the map is 2x2 after conv13 and the classifier reads 512*2*2. vgg16-imagenet
# adds the fifth pool (14 -> 7) before Linear(512*7*7, 4096). vgg6 is the authors' "VGG6": the
# VGG5 convolutions and 3 linear layers (classifier from 128*8*8 = 512*4*4 at 32x32). vgg5 and
# vgg9 keep the one hidden layer of 1024 that the shipped small models were trained with.
VGG_PLANS: dict[str, tuple[Sequence[int | str], Sequence[int]]] = {
    "vgg5": ((64, POOL, 128, 128, POOL), (1024,)),
    "vgg6": ((64, POOL, 128, 128, POOL), (4096, 4096)),
    "vgg9": ((64, POOL, 128, 256, POOL, 256, 512, POOL, 512, POOL, 512), (1024,)),
    "vgg11": ((64, POOL, 128, 256, POOL, 512, 512, POOL, 512, POOL, 512, 512), (4096, 4096)),
    "vgg16": ((64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
               512, 512, 512), (4096, 4096)),
    "vgg16-imagenet": ((64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
                        512, 512, 512, POOL), (4096, 4096)),
}


class ResNetPlan(NamedTuple):
    """Stem convolutions, the pool after them, (channels, blocks, stride) per stage, and whether
    the classifier reads a global average pool of the last map (else the map itself)."""

    stem: Sequence[int]
    stem_pool: int
    stages: Sequence[tuple[int, int, int]]
    global_pool: bool


# resnet20/resnet34 follow the authors' CIFAR code: three 64-channel pre-convolutions, AvgPool(2),
# four stages of basic blocks, and one Linear from the unpooled last map (512*2*2 at 32x32).
# Their ImageNet code pools the stem by AvgPool2d(3) (224 -> 74, remainder dropped) and ends in
# AvgPool2d(7) + Linear(512, classes); a pool here must tile the map exactly, so resnet34 pools
# the stem by 4 (224 -> 56; stages 56/28/14/7) and keeps their global 7x7 pool and Linear(512, .).
RESNET_PLANS: dict[str, ResNetPlan] = {
    "resnet-small": ResNetPlan((32,), 2, ((32, 1, 1), (64, 1, 2)), global_pool=True),
    "resnet20": ResNetPlan((64, 64, 64), 2, ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)),
                           global_pool=False),
    "resnet34": ResNetPlan((64, 64, 64), 4, ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)),
                           global_pool=True),
}


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class _Builder:
    """Appends layers while tracking the current source, its shape and a pending pool."""

    def __init__(self, input_shape: Shape):
        self.layers: list[Layer] = []
        self.source, self.shape, self.pool = INPUT, input_shape, 1

    def add(self, name: str, shape: Shape, inputs: list[Projection], kind: str = "spiking"):
        self.layers.append(Layer(name=name, kind=kind, shape=shape, inputs=tuple(inputs)))
        self.source, self.shape, self.pool = name, shape, 1

    def conv_shape(self, channels: int, stride: int = 1) -> Shape:
        _, h, w = pooled_shape(self.shape, self.pool)
        return (channels, (h - 1) // stride + 1, (w - 1) // stride + 1)

    def conv(self, name: str, channels: int) -> None:
        p = Projection(source=self.source, op="conv", weight=f"{name}.weight", pool=self.pool,
                       kernel=3, padding=1)
        self.add(name, self.conv_shape(channels), [p])

    def linear(self, name: str, units: int, kind: str = "spiking") -> None:
        p = Projection(source=self.source, op="linear", weight=f"{name}.weight", pool=self.pool)
        self.add(name, (units,), [p], kind)


def vgg(plan: str, input_shape: Shape, num_classes: int, width: float = 1.0) -> Architecture:
    """A DIET-SNN VGG: 3x3 convolutions, 2x2 average pools, linear classifier, no bias."""
    features, hidden = VGG_PLANS[plan]
    b = _Builder(input_shape)
    n_conv = 0
    for item in features:
        if item == POOL:
            b.pool *= 2
        else:
            n_conv += 1
            b.conv(f"conv{n_conv}", _scaled(int(item), width))
    for i, units in enumerate(hidden, start=1):
        b.linear(f"fc{i}", _scaled(units, width))
    b.linear("output", num_classes, kind="output")
    return Architecture(name=f"{plan}-w{width:g}", input_shape=input_shape,
                        num_classes=num_classes, layers=tuple(b.layers))


def resnet(plan: str, input_shape: Shape, num_classes: int, width: float = 1.0) -> Architecture:
    """A DIET-SNN ResNet: conv stem + average pool, basic blocks, (global pool), linear.

    The shortcut (identity, or a 1x1 convolution where shape changes) adds its current into the
    second convolution's membrane before the threshold.
    """
    stem, stem_pool, stages, global_pool = RESNET_PLANS[plan]
    b = _Builder(input_shape)
    for i, channels in enumerate(stem, start=1):
        b.conv(f"stem{i}", _scaled(channels, width))
    b.pool = stem_pool
    for s, (channels, blocks, stride) in enumerate(stages, start=1):
        channels = _scaled(channels, width)
        for k in range(1, blocks + 1):
            name = f"stage{s}.block{k}"
            block_stride = stride if k == 1 else 1
            entry, entry_shape, entry_pool = b.source, b.shape, b.pool
            shape = b.conv_shape(channels, block_stride)
            b.add(f"{name}.conv1", shape, [Projection(
                source=entry, op="conv", weight=f"{name}.conv1.weight", pool=entry_pool,
                kernel=3, stride=block_stride, padding=1)])
            if block_stride == 1 and pooled_shape(entry_shape, entry_pool)[0] == channels:
                shortcut = Projection(source=entry, op="identity", pool=entry_pool)
            else:
                shortcut = Projection(source=entry, op="conv", weight=f"{name}.shortcut.weight",
                                      pool=entry_pool, kernel=1, stride=block_stride)
            conv2 = Projection(source=b.source, op="conv", weight=f"{name}.conv2.weight",
                               kernel=3, padding=1)
            b.add(f"{name}.conv2", shape, [conv2, shortcut])
    if global_pool:
        b.pool = b.shape[1]
    b.linear("output", num_classes, kind="output")
    return Architecture(name=f"{plan}-w{width:g}", input_shape=input_shape,
                        num_classes=num_classes, layers=tuple(b.layers))


BUILDERS: dict[str, Callable[..., Architecture]] = {
    **{name: (lambda *a, _n=name, **k: vgg(_n, *a, **k)) for name in VGG_PLANS},
    **{name: (lambda *a, _n=name, **k: resnet(_n, *a, **k)) for name in RESNET_PLANS},
}


def build(name: str, input_shape: Shape, num_classes: int, width: float = 1.0) -> Architecture:
    """Build architecture ``name`` (one of :data:`BUILDERS`)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(BUILDERS)}")
    return BUILDERS[name](tuple(input_shape), num_classes, width=width)
