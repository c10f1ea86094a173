"""Headless Chromium for the tests, driven over the DevTools protocol on a pipe (standard library only).

The reports are checked as a browser renders them: their scripts run, console messages and every request the
page makes are recorded, and the checks read the live DOM. Chromium is started with
`--remote-debugging-pipe`: it reads protocol messages on its fd 3 and writes them on fd 4, each a JSON object
ended by a NUL byte. Host names resolve nowhere (`--host-resolver-rules`), so nothing can leave the machine even
if a page tried; the recorded requests show whether it tried.
"""

import base64
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    """The Chromium executable on PATH, or None."""
    return next((found for found in map(shutil.which, NAMES) if found), None)


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium with one page; a context manager.

    `console` collects (level, text, url) of console messages and uncaught exceptions, `requests` the URL of
    every request the page made (documents, scripts, images, frames).
    """

    def __init__(self, executable=None, width=1280, height=900, timeout=60):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("chromium not found")
        self.size, self.timeout = (width, height), timeout
        self.console, self.requests, self._events = [], [], []
        self._next_id, self._buffer, self._session = 0, b"", None

    def __enter__(self):
        self._profile = tempfile.mkdtemp(prefix="frcunet-chromium-")
        ours_read, theirs_write = os.pipe()
        theirs_read, ours_write = os.pipe()
        command = [self.executable, "--headless", "--disable-gpu", "--no-sandbox", "--remote-debugging-pipe",
                   "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={self._profile}",
                   f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        # bash puts the pipe ends on fds 3 and 4 and becomes Chromium (no preexec_fn, which is unsafe in a process
        # with threads; dash takes only one-digit fd numbers).
        wrapper = [shutil.which("bash") or "/bin/bash", "-c", f'exec "$0" "$@" 3<&{theirs_read} 4>&{theirs_write}']
        self._log = open(Path(self._profile) / "stderr.log", "wb")  # its last lines explain a crash
        self._process = subprocess.Popen(
            wrapper + command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            pass_fds=(theirs_read, theirs_write))
        os.close(theirs_read)
        os.close(theirs_write)
        self._read, self._write = ours_read, ours_write
        try:
            self._attach()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            if self._process.poll() is None:
                try:
                    self._send("Browser.close", session=False)
                    self._process.wait(10)
                except (BrowserError, OSError, subprocess.TimeoutExpired):
                    self._process.kill()
                    self._process.wait()
        finally:
            os.close(self._read)
            os.close(self._write)
            self._log.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    # The protocol.

    def _send(self, method, params=None, session=True):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline):
        """The next message from the browser; BrowserError when none comes before `deadline`."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            with selectors.DefaultSelector() as selector:
                selector.register(self._read, selectors.EVENT_READ)
                if left <= 0 or not selector.select(left):
                    raise BrowserError("chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                said = (Path(self._profile) / "stderr.log").read_text(errors="replace").strip().splitlines()[-5:]
                raise BrowserError("chromium closed the pipe (it crashed or exited): " + " / ".join(said))
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(message)
        if "method" in message:
            self._record(message)
        return message

    def _record(self, event):
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append((params["type"], text, ""))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.console.append(("exception", text, details.get("url", "")))
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.console.append((entry["level"], entry["text"], entry.get("url", "")))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        self._events.append(event)

    def call(self, method, params=None, session=True):
        """Sends a command and returns its result; BrowserError on a protocol error."""
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for(self, method):
        """Waits for the next event `method` (one already received and not yet waited for counts)."""
        deadline = time.monotonic() + self.timeout
        while True:
            for index, event in enumerate(self._events):
                if event["method"] == method:
                    del self._events[: index + 1]
                    return event.get("params", {})
            self._events.clear()
            self._receive(deadline)

    def _attach(self):
        targets = self.call("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self._session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                  session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.size[0], "height": self.size[1],
                                                         "deviceScaleFactor": 1, "mobile": False})

    # What the tests use.

    def open(self, path):
        """Loads a local file and waits for its load event; returns the seconds from navigation to load."""
        url = Path(path).resolve().as_uri()
        self._events.clear()
        start = time.perf_counter()
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        self.wait_for("Page.loadEventFired")
        return time.perf_counter() - start

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True, "userGesture": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def screenshot(self, path, top=0, height=None):
        """A PNG of the page as rendered: the window's width, from `top` (CSS pixels) down `height` pixels (default:
        the window's height), beyond the viewport if need be."""
        clip = {"x": 0, "y": top, "width": self.size[0], "height": height or self.size[1], "scale": 1}
        data = self.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})
        Path(path).write_bytes(base64.b64decode(data["data"]))

    def errors(self):
        """Console errors and uncaught exceptions seen so far."""
        return [entry for entry in self.console if entry[0] in ("error", "exception", "assert")]

    def external_requests(self):
        """Requests to anything other than local files and inline data."""
        return [url for url in self.requests if not url.startswith(("file:", "data:", "about:", "blob:"))]
