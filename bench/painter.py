"""The suite's full-screen workload (``--workload full``): an X client a session runs as its
user, which covers the whole screen and paints a different busy picture over all of it every
half second, as a video or a full-screen terminal running ``top -d 0.5`` would.

The picture is real content that a JPEG cannot shrink to nothing: colour gradients, a
hundred and more shapes, rows of text (a 320x200 thumbnail of it is about 6 kB at the
Dashboard's quality). It is drawn once into a pixmap in the X server; each frame then tiles
the screen with it from another origin (one small request: the X server does the 4 MB of
pixels), so every pixel changes while the painter itself costs next to nothing, and the bench
measures the daemon, not this.

    /opt/polydesk/venv/bin/python painter.py [SECONDS]   # DISPLAY and XAUTHORITY of the session

It stops after SECONDS (default 600: never outlives a forgotten bench) or at SIGTERM.
"""

from __future__ import annotations

import os
import random
import sys
import time

from PIL import Image, ImageDraw, ImageFont
from Xlib import X, display

FRAME_S = 0.5
STRIP_ROWS = 32  # rows per PutImage: a request stays under the core protocol's 256 kB
STEP = (331, 207)  # how far the picture moves each frame: far enough that every pixel changes
WORDS = ["load", "average:", "12.5", "firefox", "%MEM", "3041", "root", "S", "0:01.22", "Tasks:"]


def scene(size: tuple[int, int], seed: int) -> Image.Image:
    """A busy picture of ``size``: the same for the same seed."""
    rng = random.Random(seed)
    width, height = size
    image = Image.merge("RGB", (Image.linear_gradient("L").resize(size),
                                Image.radial_gradient("L").resize(size),
                                Image.linear_gradient("L").rotate(90).resize(size)))
    draw = ImageDraw.Draw(image)
    for _ in range(120):
        x, y = rng.randrange(width), rng.randrange(height)
        box = (x, y, x + rng.randint(8, 160), y + rng.randint(8, 120))
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
    font = ImageFont.load_default(size=14)
    for row in range(0, height, 40):
        line = " ".join(rng.choice(WORDS) for _ in range(20))
        draw.text((rng.randrange(40), row + rng.randrange(20)), line, fill=(255, 255, 255), font=font)
    return image


def main(seconds: float) -> None:
    conn = display.Display()
    screen = conn.screen()
    root = screen.root
    size = (screen.width_in_pixels, screen.height_in_pixels)
    window = root.create_window(0, 0, size[0], size[1], 0, screen.root_depth,
                                override_redirect=True, background_pixel=screen.black_pixel)
    pixmap = window.create_pixmap(size[0], size[1], screen.root_depth)
    plain = pixmap.create_gc()
    raw = scene(size, seed=os.getuid()).tobytes("raw", "BGRX")  # each session its own picture
    stride = size[0] * 4
    for top in range(0, size[1], STRIP_ROWS):
        rows = min(STRIP_ROWS, size[1] - top)
        pixmap.put_image(plain, 0, top, size[0], rows, X.ZPixmap, screen.root_depth, 0,
                         raw[top * stride:(top + rows) * stride])
    tiled = window.create_gc(fill_style=X.FillTiled, tile=pixmap)
    window.map()
    conn.sync()
    x = y = 0
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        x, y = (x + STEP[0]) % size[0], (y + STEP[1]) % size[1]
        tiled.change(tile_stipple_x_origin=x, tile_stipple_y_origin=y)
        window.fill_rectangle(tiled, 0, 0, size[0], size[1])
        conn.sync()
        time.sleep(FRAME_S)
    conn.close()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 600.0)
