"""The reference kiosk UI: a static web app over the MQTT API, served on loopback.

``web/`` holds its sources (an npm project), ``static/`` the committed bundle
built from them, ``server`` the loopback HTTP server and ``bundle`` the check
that the bundle matches its sources (docs/ui.md).
"""

#: Default port of the UI server (``kioskd ui``, ``kioskd run --sim``).
DEFAULT_PORT = 8080
