"""A minimal webhook receiver for a Handoff subscription, with the standard library only.

    HANDOFF_WEBHOOK_SECRETS=whsec_... python examples/webhook_receiver.py 8000

Point the subscription's `delivery.url` at http://<host>:8000/handoff (behind TLS in
production) and put the same secret in the broker's webhook secrets file. Several
secrets, space-separated, are accepted during a rotation.

Each delivery is verified (signature, replay window), de-duplicated by its
`webhook-id` (the decision id: the same delivery can arrive more than once), and
appended to deliveries.jsonl. Anything that fails verification gets 400 and is not kept.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from connectors.webhook_receiver import WebhookVerificationError, verify

SECRETS = os.environ.get("HANDOFF_WEBHOOK_SECRETS", "").split()
OUT = Path("deliveries.jsonl")
MAX_BODY = 1 << 20
_seen: set[str] = set()
_lock = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if self.path != "/handoff" or length > MAX_BODY:
            self._answer(404 if self.path != "/handoff" else 413)
            return
        body = self.rfile.read(length)
        try:
            delivery = verify(dict(self.headers.items()), body, SECRETS)
        except WebhookVerificationError as exc:
            self.log_message("refused: %s", exc)      # the reason, never the body
            self._answer(400)
            return
        with _lock:
            if delivery["decision_id"] not in _seen:  # a repeat is answered 2xx, not kept
                _seen.add(delivery["decision_id"])
                with OUT.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(delivery) + "\n")
        self._answer(204)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


if __name__ == "__main__":
    if not SECRETS:
        sys.exit("set HANDOFF_WEBHOOK_SECRETS to the subscription's whsec_ secret(s)")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    print(f"receiving on http://127.0.0.1:{port}/handoff; writing {OUT}")
    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
