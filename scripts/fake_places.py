#!/usr/bin/env python3
"""A stand-in for Google's Nearby Search, for scripts/bench.sh when no baseline is beside
the repo: every GET gets the same 20 places with status OK, at once. The herd caches the
first answer, so the bench measures the herd's cached path, not this server.

    python3 scripts/fake_places.py PORT    # listens on 127.0.0.1:PORT until killed
"""
import http.server
import json
import sys

PLACES = [
    {
        "name": f"Place {i}",
        "place_id": f"fake-{i}",
        "vicinity": f"{i} Westwood Plaza, Los Angeles",
        "geometry": {"location": {"lat": 34.0689 + i / 1000, "lng": -118.4452 - i / 1000}},
        "types": ["point_of_interest", "establishment"],
        "rating": 4.5,
    }
    for i in range(20)
]
BODY = json.dumps({"html_attributions": [], "results": PLACES, "status": "OK"}, indent=3).encode()


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Answer)
    server.serve_forever()
