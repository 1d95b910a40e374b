"""Real-browser test helpers: a throwaway JupyterLab server and headless Debian Chromium driven by Playwright.

The server runs on 127.0.0.1 on a free port with a random token, in a temp root dir, with its config,
runtime, settings and workspace dirs also in temp dirs (nothing of the user's is read or written). The browser
is Debian's `chromium` at an explicit path (Playwright cannot download its own browsers here), with a fresh
user-data dir and no background networking.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Self

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """`with JupyterLab(root) as lab: lab.url("lab/tree/x.ipynb")` -> a running server, stopped on exit."""

    def __init__(self, root: Path, scratch: Path, start_timeout: float = 90.0) -> None:
        self.root, self.scratch, self.start_timeout = Path(root), Path(scratch), start_timeout
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.log_path = self.scratch / "jupyterlab.log"
        self.process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def __enter__(self) -> Self:
        env = dict(os.environ)
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                     "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):
            folder = self.scratch / name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            env[name] = str(folder)
        # The notebook's "python3" kernel is this interpreter (the user data dir wins over other kernelspecs).
        spec = self.scratch / "jupyter_data_dir" / "kernels" / "python3"
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (workbench test)", "language": "python"}))
        env["HF_HUB_OFFLINE"] = "1"
        news = self.scratch / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)  # do not ask about (online) news
        (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                   "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True",
                   "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                   "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            command.append("--allow-root")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise TimeoutError(f"JupyterLab did not answer within {self.start_timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def launch_chromium(playwright, profile: Path):
    """A persistent (fresh) Chromium context on Debian's browser binary."""
    return playwright.chromium.launch_persistent_context(
        user_data_dir=str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 1100}, timeout=60_000)
