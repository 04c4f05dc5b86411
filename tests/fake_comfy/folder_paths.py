"""folder_paths.py (ComfyUI 0.33.0): `get_user_directory` (l.146), the folder of per-user data; here a temporary
folder chosen by the test harness."""
import os
import tempfile

user_directory = os.path.join(tempfile.gettempdir(), "fake-comfy-user")


def get_user_directory() -> str:
    return user_directory
