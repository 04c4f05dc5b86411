"""Which WebUI is running, and so which backend FGAT talks to (`detect_backend`), in one place above the
backends: each backend module knows only its base class, never the registry."""

from __future__ import annotations

from .backend import A1111Backend, WebUIBackend
from .forge_backend import ForgeBackend
from .neo_backend import NeoBackend

SUPPORTED_WEBUIS = "AUTOMATIC1111 1.10.x, Forge 2.x (lllyasviel) and Forge Neo"


def unsupported_webui() -> str | None:
    """Why this WebUI cannot run FGAT (None when it can, or when no model tells): a Forge 1.x backend
    (reForge, Forge Classic), whose UNet patcher wraps an `ldm_patched` BaseModel (`model_sampling`, no
    `predictor`) behind `forge_objects`."""
    from modules import shared

    objects = getattr(shared.sd_model, "forge_objects", None)
    unet = getattr(getattr(objects, "unet", None), "model", None)
    if unet is None or hasattr(unet, "predictor") or not hasattr(unet, "model_sampling"):
        return None
    return (f"FGAT supports {SUPPORTED_WEBUIS}; this WebUI runs the Forge 1.x backend (ldm_patched, as reForge "
            "and Forge Classic do), which FGAT does not support: use one of those WebUIs")


def backend_classes() -> list[type[WebUIBackend]]:
    """Every backend, most specific first; the first whose `is_active()` is true runs."""
    return [NeoBackend, ForgeBackend, A1111Backend]


def detect_backend() -> WebUIBackend:
    reason = unsupported_webui()  # reForge / Forge Classic (Forge 1.x backend)
    if reason:
        raise ValueError(reason)
    for cls in backend_classes():
        if cls.is_active():
            return cls()
    raise ValueError(f"FGAT does not recognise this WebUI: it supports {SUPPORTED_WEBUIS}")
