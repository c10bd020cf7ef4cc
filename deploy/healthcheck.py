#!/usr/bin/env python3
"""Container health check: exit 0 when a Handoff process answers 200 on a health path.

    handoff-healthcheck [PORT] [PATH]

PORT defaults to $HEALTHCHECK_PORT, then 8080; PATH defaults to /readyz, so Docker calls
a container healthy only once it is ready (policy loaded, router running). Uses the
standard library only: the slim image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    port = argv[1] if len(argv) > 1 else os.environ.get("HEALTHCHECK_PORT", "8080")
    path = argv[2] if len(argv) > 2 else "/readyz"
    url = f"http://127.0.0.1:{int(port)}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"{url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
