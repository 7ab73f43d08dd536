"""Live view in a browser: a page per bed and a ward page, fed by one WebSocket per page.

The viewer only subscribes to the bus (latest-wins, downscaled, rate-limited); it never slows the
pipeline. ``security`` and ``render`` are pure and import nothing heavy; ``hub`` owns the
subscriptions, ``server`` the HTTP/WebSocket side (aiohttp, the ``viewer`` extra).
"""
