"""The ``auto`` speed mode: ``fast`` where bf16 convolutions beat float32 on this processor, ``fp32`` elsewhere.

bf16 autocast (the ``fast`` mode, :mod:`tedsnet.speed.modes`) pays only where the processor runs bf16 dot products
faster than float32 ones; processors that both report ``avx512_bf16`` can differ either way, so the flags cannot
decide. ``auto`` therefore asks the processor: :func:`probe_bf16_convolutions` times the forward and backward of
one 3 x 3 convolution per TEDS-Net encoder level (:data:`PROBE_LAYERS`, batch 5), run as the speed modes run
them, in float32 and under bf16 autocast, interleaved. :func:`resolve_speed_mode` picks ``fast`` when bf16 is at
least :data:`MIN_BF16_SPEEDUP` times faster. On CUDA it picks ``fast`` where the device supports bf16. Like cuDNN's
benchmark mode, the choice can differ between machines (never the maths of either mode);
:func:`tedsnet.training.engine.train` logs it, records the mode it ran in the checkpoint, and a resumed run keeps
its mode. ``docs/performance.md`` lists measured speed-ups.
"""

from __future__ import annotations

import statistics
import time
from typing import NamedTuple

import torch

from tedsnet.speed.modes import SPEED_MODES, ChannelsLastConv2d

#: Modes :func:`resolve_speed_mode` accepts: the speed modes and ``auto``.
REQUESTABLE_SPEED_MODES = (*SPEED_MODES, "auto")
#: (channels, H, W) of the probed convolutions: TEDS-Net's encoder levels at 144 x 208.
PROBE_LAYERS = ((12, 144, 208), (24, 72, 104), (48, 36, 52), (96, 18, 26))
#: Least speed-up of the bf16 probe over float32 for which ``auto`` picks ``fast``: the rest of a training step
#: (norms, dropout, the diffeomorphic layers) stays float32, so a small gain on the convolutions is lost in the
#: casts around them.
MIN_BF16_SPEEDUP = 1.1


class Bf16Probe(NamedTuple):
    """Median seconds of one pass (forward + backward of every probed layer) in float32 and under bf16 autocast."""

    fp32_s: float
    bf16_s: float

    @property
    def speedup(self) -> float:
        """float32 time over bf16 time: above 1 when bf16 is faster."""
        return self.fp32_s / self.bf16_s


def probe_bf16_convolutions(
    *, batch: int = 5, rounds: int = 7, warmup: int = 2, layers=PROBE_LAYERS
) -> Bf16Probe:
    """Time 3 x 3 convolutions forward + backward on CPU in float32 and under bf16 autocast.

    Each layer is a :class:`~tedsnet.speed.modes.ChannelsLastConv2d` (as the ``fp32`` and ``fast`` modes run them) on a
    ``(batch, C, H, W)`` input that needs a gradient. The two dtypes take turns, ``warmup`` passes each first, then
    ``rounds`` timed passes each; a drift of the machine's speed falls on both alike. Torch's random state is
    left as it was (weights and inputs are drawn inside ``torch.random.fork_rng``). Uses the current
    ``torch.get_num_threads()``.

    Parameters
    ----------
    batch : int
        Images per probed input.
    rounds : int
        Timed passes per dtype.
    warmup : int
        Untimed passes per dtype first.
    layers : sequence of (C, H, W)
        The probed convolutions (C -> C channels at H x W).

    Returns
    -------
    Bf16Probe
        Median seconds per pass in each dtype.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probes = []
        for channels, height, width in layers:
            conv = ChannelsLastConv2d(channels, channels, 3, padding=1, bias=False)
            probes.append((conv, torch.randn(batch, channels, height, width, requires_grad=True)))

    def one_pass(bf16: bool) -> float:
        start = time.perf_counter()
        for conv, x in probes:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = conv(x)
            y.float().sum().backward()
        return time.perf_counter() - start

    times: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(warmup + rounds):
        for bf16 in (round_ % 2 == 0, round_ % 2 == 1):
            seconds = one_pass(bf16)
            if round_ >= warmup:
                times[bf16].append(seconds)
    return Bf16Probe(fp32_s=statistics.median(times[False]), bf16_s=statistics.median(times[True]))


class SpeedModeChoice(NamedTuple):
    """The mode a run uses and why."""

    mode: str
    reason: str


def resolve_speed_mode(
    mode: str, device: torch.device | str = "cpu", *, probe: Bf16Probe | None = None
) -> SpeedModeChoice:
    """The speed mode to run: ``mode`` itself, or for ``"auto"`` ``"fast"`` or ``"fp32"`` for this device.

    Parameters
    ----------
    mode : {"eager", "fp32", "fast", "auto"}
        The requested mode.
    device : torch.device or str
        Where the model runs. CPU: ``auto`` runs :func:`probe_bf16_convolutions` (unless ``probe`` is given) and
        picks ``fast`` when bf16 is at least :data:`MIN_BF16_SPEEDUP` times faster. CUDA: ``fast`` where
        ``torch.cuda.is_bf16_supported()``.
    probe : Bf16Probe, optional
        A probe already measured (tests, or a caller that probes once for many runs).

    Returns
    -------
    SpeedModeChoice
        ``(mode, reason)``; the reason is one line for the log.

    Raises
    ------
    ValueError
        If ``mode`` is not one of :data:`REQUESTABLE_SPEED_MODES`.

    Examples
    --------
    >>> resolve_speed_mode("fp32")
    SpeedModeChoice(mode='fp32', reason='as requested')
    """
    if mode not in REQUESTABLE_SPEED_MODES:
        raise ValueError(f"speed mode must be one of {REQUESTABLE_SPEED_MODES}, got {mode!r}.")
    if mode != "auto":
        return SpeedModeChoice(mode, "as requested")
    device = torch.device(device)
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        return SpeedModeChoice(
            "fast" if supported else "fp32",
            f"auto: the CUDA device {'supports' if supported else 'lacks'} bf16",
        )
    if probe is None:
        probe = probe_bf16_convolutions()
    chosen = "fast" if probe.speedup >= MIN_BF16_SPEEDUP else "fp32"
    return SpeedModeChoice(
        chosen,
        f"auto: bf16 convolutions ran {probe.speedup:.2f}x as fast as float32 on this processor "
        f"({probe.bf16_s * 1e3:.1f} vs {probe.fp32_s * 1e3:.1f} ms per probe pass; fast needs >= {MIN_BF16_SPEEDUP}x)",
    )
