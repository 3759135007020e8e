"""Where a training's images live and how a batch reaches the device.

On a CPU the uint8 tensors are used where they are. On CUDA, a dataset that takes at most
:data:`RESIDENT_SHARE` of the device's free memory (a CIFAR-sized proxy, 150 MB as uint8, fits
on any GPU) is copied to the device once, and every batch is gathered there: no host-to-device
copy per step. A larger one stays on the host and each batch is gathered into page-locked
(pinned) memory, so its copy to the device is truly asynchronous (``non_blocking=True`` from
ordinary pageable memory waits for the copy). The pinned buffers come from torch's caching
host allocator, which does not reuse one before the copy that reads it has finished.
"""

from __future__ import annotations

import torch

RESIDENT_SHARE = 0.25


def cuda_device(device: torch.device) -> torch.device:
    """``cuda`` with its index made explicit (``cuda:N``, N the current device), so tensors'
    devices compare equal to it; other devices unchanged."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def fits_on_device(nbytes: int, free_bytes: int, share: float = RESIDENT_SHARE) -> bool:
    """Whether ``nbytes`` of data may stay resident: at most ``share`` of the free memory."""
    return nbytes <= share * free_bytes


def resident(nbytes: int, device: torch.device) -> bool:
    """Whether data of ``nbytes`` is kept on the CUDA ``device`` (see :func:`fits_on_device`,
    against ``torch.cuda.mem_get_info``); always False elsewhere."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return fits_on_device(nbytes, free)


class DeviceData:
    """uint8 images and their labels, served to one device a batch at a time: resident on a
    CUDA device when they fit, else gathered into pinned host memory per batch (on a CPU:
    gathered in place)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                 keep_resident: bool | None = None) -> None:
        """Images already on ``device`` stay there (one copy shared by several trainings);
        host images are copied to a CUDA device when ``keep_resident`` says so (default: when
        they fit, :func:`resident`)."""
        self.device = device = cuda_device(device)
        if device.type == "cuda" and images.device != device:
            if keep_resident is None:
                keep_resident = resident(images.nbytes + labels.nbytes, device)
            if keep_resident:
                images = images.to(device)
        self.images, self.labels = images, labels.to(images.device)
        self.resident = device.type == "cuda" and images.device == device
        self.pinned = device.type == "cuda" and not self.resident

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def where(self) -> str:
        """``device``, ``pinned`` or ``host`` (for the record)."""
        return "device" if self.resident else "pinned" if self.pinned else "host"

    def order(self, permutation: torch.Tensor) -> torch.Tensor:
        """An epoch's permutation (made on the CPU, for the same order on every device) where
        the images are, so batches are gathered without a copy of the index per step."""
        return permutation.to(self.images.device)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at ``index`` (from :meth:`order`), on the device."""
        if not self.pinned:
            return self.images[index].to(self.device), self.labels[index].to(self.device)
        images = torch.empty((index.shape[0], *self.images.shape[1:]), dtype=self.images.dtype,
                             pin_memory=True)
        torch.index_select(self.images, 0, index, out=images)
        labels = self.labels[index].pin_memory()
        return (images.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True))


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``batch`` on ``device``; a host batch bound for CUDA goes through pinned memory."""
    if device.type == "cuda" and batch.device.type == "cpu":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)
