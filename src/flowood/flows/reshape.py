"""Volume-preserving reshapes: squeeze (space-to-depth) and its inverse, images to patch tokens and back."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from flowood.flows.base import InvertibleModule, zero_logdet


def image_shape(input_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    """``input_shape`` as ``(C, H, W)``, or a :class:`ValueError` saying that architecture ``name`` needs one."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} needs input_shape=(C, H, W), got {tuple(input_shape)}")
    return shape[0], shape[1], shape[2]


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """Images to patch tokens: ``(B, C, H, W) -> (B, T, D)``, ``T = (H/p)·(W/p)``, ``D = p²·C``.

    Tokens are in raster order (row of patches by row); a token's features are its pixels in raster order,
    all channels of a pixel together (Jet's ``(hp wp c)`` layout). A permutation of the entries: log-det 0.
    """
    b, c, h, w = x.shape
    p = patch_size
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: Tensor, patch_size: int, shape: Sequence[int]) -> Tensor:
    """The exact inverse of :func:`patchify`: ``(B, T, D) -> (B, C, H, W)`` for per-sample ``shape = (C, H, W)``."""
    c, h, w = shape
    p = patch_size
    x = tokens.reshape(tokens.shape[0], h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(tokens.shape[0], c, h, w)


def squeeze2d(x: Tensor, factor: int = 2) -> Tensor:
    """Space-to-depth: ``(B, C, H, W) -> (B, C·f², H/f, W/f)``.

    Output channel ``c·f² + i·f + j`` holds pixel ``(i, j)`` of each ``f×f`` block of input channel
    ``c``, the ordering used by RealNVP/Glow so that a channel-wise split mixes spatial positions.
    """
    b, c, h, w = x.shape
    if h % factor or w % factor:
        raise ValueError(
            f"squeeze by {factor} needs height and width divisible by {factor}, got {h}×{w}; "
            "use an input size that is a multiple of 2**num_scales"
        )
    x = x.reshape(b, c, h // factor, factor, w // factor, factor)
    x = x.permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * factor * factor, h // factor, w // factor)


def unsqueeze2d(x: Tensor, factor: int = 2) -> Tensor:
    """Depth-to-space, the exact inverse of :func:`squeeze2d`."""
    b, c, h, w = x.shape
    if c % (factor * factor):
        raise ValueError(f"unsqueeze by {factor} needs channels divisible by {factor**2}, got {c}")
    x = x.reshape(b, c // (factor * factor), factor, factor, h, w)
    x = x.permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // (factor * factor), h * factor, w * factor)


class Squeeze(InvertibleModule):
    """Invertible space-to-depth; log-determinant 0."""

    backprop = "free"  # a permutation: autograd saves nothing for it (flowood.flows.invert)

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return squeeze2d(x, self.factor), zero_logdet(x)

    def inverse(self, y: Tensor) -> Tensor:
        return unsqueeze2d(y, self.factor)


class Unsqueeze(InvertibleModule):
    """Depth-to-space, the inverse of :class:`Squeeze`; log-determinant 0."""

    backprop = "free"  # a permutation: autograd saves nothing for it (flowood.flows.invert)

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return unsqueeze2d(x, self.factor), zero_logdet(x)

    def inverse(self, y: Tensor) -> Tensor:
        return squeeze2d(y, self.factor)
