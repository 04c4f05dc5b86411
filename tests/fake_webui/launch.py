"""Mirrors launch.py / modules/launch_utils.py as extension installers see them (`import launch`):
is_installed (launch_utils.py:121-132), run_pip (l.139-144, a no-op with --skip-install), args.
The fake records pip calls instead of running pip."""
import importlib.metadata
import importlib.util
from types import SimpleNamespace

args = SimpleNamespace(skip_install=False)
pip_calls = []


def is_installed(package):
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        try:
            return importlib.util.find_spec(package) is not None
        except ModuleNotFoundError:
            return False


def run_pip(command, desc=None, live=False):
    if args.skip_install:
        return None
    pip_calls.append(command)
    return ""
