"""Mirrors the parts of modules/images.py that img2img uses: resize_image (resize mode 0 = "just resize"
only), flatten, image_grid; saving is a no-op (opts.samples_save is off in the fake)."""
from PIL import Image


def resize_image(resize_mode, im, width, height, upscaler_name=None):
    if resize_mode not in (0, 2):
        raise NotImplementedError("the fake WebUI mirrors resize mode 0 (just resize) only")
    return im.resize((width, height), Image.LANCZOS)


def flatten(img, bgcolor):
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, bgcolor)
        background.paste(img, mask=img)
        img = background
    return img.convert("RGB")


def image_grid(imgs, batch_size=1, rows=None):
    cols = len(imgs)
    w, h = imgs[0].size
    grid = Image.new("RGB", size=(cols * w, h))
    for i, img in enumerate(imgs):
        grid.paste(img, box=(i * w, 0))
    return grid


def save_image(*args, **kwargs):
    return None, None


def read(fp):
    img = Image.open(fp)
    img.load()
    return img
