"""Mirrors modules/paths.py + paths_internal.py: script_path is the WebUI root, data_path the data dir."""
import os
import tempfile

script_path = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data_path = tempfile.mkdtemp(prefix="fake-webui-data-")
models_path = os.path.join(data_path, "models")
