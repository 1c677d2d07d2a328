"""Take the web view's screenshots for the docs: docs/img/ui-threads.png and docs/img/ui-thread.png.

    .venv/bin/python scripts/ui_screenshots.py [OUT_DIR]

Fills a temporary mixed store (executor threads in every state and two
LangGraph threads, tests/ui/demo.py), serves it on a free loopback port and
photographs the thread list and one thread in headless Chromium (Debian's
chromium + chromium-driver, as the browser test uses).
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cairnflow.savers import open_saver  # noqa: E402 - after the path set-up
from cairnflow.ui.model import Browser  # noqa: E402
from cairnflow.ui.server import make_server  # noqa: E402
from tests.ui.browser import chrome  # noqa: E402
from tests.ui.demo import populate_demo  # noqa: E402

SHOTS = {
    "ui-threads.png": ("/", 1280, 720),
    "ui-thread.png": ("/thread?id=done-1&layout=executor", 1280, 1500),
    "ui-langgraph.png": ("/thread?id=agent-wait&layout=langgraph", 1280, 1100),
}


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"file://{tmp}/store"
        populate_demo(url, hostile_thread=False)
        server = make_server(Browser(open_saver(url, create=False)), "127.0.0.1", 0, quiet=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        driver = chrome()
        try:
            for name, (path, width, height) in SHOTS.items():
                driver.set_window_size(width, height)
                driver.get(f"{server.url.rstrip('/')}{path}")
                target = out_dir / name
                if not driver.save_screenshot(str(target)):
                    raise SystemExit(f"could not save {target}")
                print(f"wrote {target}")
        finally:
            driver.quit()
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img")
