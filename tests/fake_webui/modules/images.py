"""Mirrors the parts of modules/images.py that img2img uses: resize_image (a plain resize: mode 0, and modes
1 and 2 where the aspect ratio matches), flatten, image_grid; saving is a no-op (opts.samples_save is off in the fake)."""
from PIL import Image


def resize_image(resize_mode, im, width, height, upscaler_name=None):
    """Modes 1 (crop and resize) and 2 (resize and fill) only where the aspect ratio already matches (as it
    does for the regions 'Only masked' inpainting crops and pastes): then every mode is a plain resize."""
    if resize_mode not in (0, 1, 2):
        raise NotImplementedError(f"the fake WebUI does not mirror resize mode {resize_mode}")
    if resize_mode and abs(im.width * height - im.height * width) > max(width, height, im.width, im.height):
        raise NotImplementedError("the fake WebUI mirrors resize modes 1 and 2 for a matching aspect ratio only")
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
