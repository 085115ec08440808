"""Animated GIFs in TensorBoard's image tab, without moviepy.

torch's `add_video` needs moviepy 1.x (`moviepy.editor`, gone in 2.x). TensorBoard shows any GIF-encoded
image summary as an animation, so we encode the GIF with imageio and write the summary ourselves.
"""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter


def add_gif(writer: SummaryWriter, tag: str, frames: np.ndarray, step: int, fps: float = 24) -> None:
    """frames (T, H, W, 3) uint8 -> one animated image summary under `tag`."""
    gif = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)
    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
