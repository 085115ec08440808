import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from mGPT.render.tensorboard import add_gif


def test_gif_summary_round_trips_through_the_event_file(tmp_path):
    frames = np.zeros((5, 8, 10, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(5)[:, None, None] * 50  # a different red level per frame
    writer = SummaryWriter(str(tmp_path))
    add_gif(writer, "val/sample_0", frames, step=7, fps=10)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    [image] = events.Images("val/sample_0")
    assert (image.step, image.width, image.height) == (7, 10, 8)
    assert image.encoded_image_string[:6] == b"GIF89a"
    import imageio.v3 as iio

    decoded = iio.imread(image.encoded_image_string, extension=".gif", index=None)
    assert decoded.shape[0] == 5
    assert [int(f[0, 0, 0]) for f in decoded] == [0, 50, 100, 150, 200]
