"""Run by the WebUI at startup (A1111 modules/launch_utils.py:228-277; skipped with --skip-install).

FGAT needs nothing beyond what both WebUIs already ship (torch, numpy, Pillow, gradio): it uses the WebUI's
own model, so it never imports diffusers or transformers there. This installer only installs a missing
requirement, unpinned, and never upgrades or downgrades a package the WebUI pins. torch and gradio are never
installed here: a WebUI without them is broken, and an unpinned install would pull a build (a CPU torch, a
newer gradio) that breaks it further."""

import launch

# import name -> pip name; every one is a WebUI requirement already, so normally nothing happens
REQUIREMENTS = {"numpy": "numpy", "PIL": "pillow"}


def missing_requirements() -> list[str]:
    return [pip for module, pip in REQUIREMENTS.items()
            if not launch.is_installed(module) and not launch.is_installed(pip)]


def install() -> list[str]:
    missing = missing_requirements()
    for pip_name in missing:
        launch.run_pip(f"install {pip_name}", f"{pip_name} for Fine-grained Appearance Transfer")
    return missing


install()
