"""The headless Debian chromium that the browser tests and tools/bench_viewer.py drive.

Defined once here (both import the library; neither imports the other). Only constants: the viewer
itself never starts a browser.
"""

CHROMIUM = "/usr/bin/chromium"
# No sandbox (containers), no GPU, and nothing that reaches out of this closed network
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
