"""The virtualenv of the Engine.IO / Socket.IO interop scripts: python-socketio, python-engineio and
aiohttp at pinned versions, created at $SOCKWAY_PYENV (default /tmp/sockway-pyenv) when missing."""
import os
import subprocess
import sys

PINNED = ["python-socketio==5.18.1", "python-engineio==4.15.1", "aiohttp==3.14.5"]


def ensure(script):
    """Re-executes `script` (with this process's arguments) in the virtualenv unless the pinned packages
    are importable here already."""
    try:
        import aiohttp  # noqa: F401
        import engineio  # noqa: F401
        import socketio  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.environ.get("SOCKWAY_PYENV", "/tmp/sockway-pyenv")
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        sys.exit(f"{venv} exists but lacks {' '.join(PINNED)}; remove it or pip install them there")
    if not os.path.exists(python):
        print(f"creating {venv} with {' '.join(PINNED)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    probe = subprocess.run([python, "-c", "import aiohttp, engineio, socketio"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "-q", *PINNED], check=True, timeout=600)
    os.execv(python, [python, os.path.abspath(script), *sys.argv[1:]])
