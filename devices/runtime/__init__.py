"""Infrastructure every long-lived part of kioskd shares, written once.

- :mod:`.clock`: wall-clock milliseconds for records and messages;
- :mod:`.backoff`: the jittered exponential backoff of every retry loop;
- :mod:`.worker`: the one worker-thread seam for blocking calls, with one
  cancellation behaviour;
- :mod:`.sqlite_store`: an SQLite database confined to such a worker thread.

It lives under ``devices/`` because the daemon imports devices and never the
reverse, and both use these pieces.
"""
