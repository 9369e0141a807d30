"""Where training data live: on the GPU when they fit, else in host memory with per-batch copies."""

from __future__ import annotations

import pytest
import torch

from flowood.train import data as data_mod
from flowood.train.data import TensorBatches, fits_on_device


def test_cpu_always_holds_the_data():
    assert fits_on_device(10**15, torch.device("cpu"))


def test_cuda_holds_data_up_to_half_its_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1_000, 4_000))
    cuda = torch.device("cuda")
    assert fits_on_device(500, cuda) and not fits_on_device(501, cuda)
    assert fits_on_device(900, cuda, max_fraction=0.9)


def test_a_dataset_too_large_for_the_gpu_stays_on_the_host(monkeypatch):
    # No GPU here: pretend one with 1 kB free, so 64 images of 28×28 bytes must stay on the host.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1_000, 4_000))
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    tb = TensorBatches(images, "image", torch.device("cuda"))
    assert not tb.on_device and tb.data.device.type == "cpu" and len(tb) == 64


@pytest.mark.parametrize("on_device", [True, False])
def test_batches_are_the_same_wherever_the_data_live(monkeypatch, on_device):
    images = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8)
    monkeypatch.setattr(data_mod, "fits_on_device", lambda nbytes, device: on_device)
    tb = TensorBatches(images, "image", torch.device("cpu"))
    assert tb.on_device is on_device
    reference = images.float() / 255.0
    gen = torch.Generator().manual_seed(7 * 100_003 + 2)
    order = torch.randperm(50, generator=gen)
    batches = list(tb.epoch(16, seed=7, epoch=2))
    assert len(batches) == 3
    for b, batch in enumerate(batches):
        assert torch.equal(batch, reference[order[b * 16 : (b + 1) * 16]])
    assert torch.equal(torch.cat(list(tb.sequential(16))), reference)
    assert tb.random_batch(8, torch.Generator().manual_seed(0)).shape == (8, 1, 4, 4)
