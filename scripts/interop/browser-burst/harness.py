#!/usr/bin/env python3
"""The page server of scripts/browser-burst (Python 3 standard library only, 127.0.0.1 only).

Serves:
  GET  /burst.html, /burst.js   the test page (from this directory)
  GET  /sockjs.js               the sockjs-client browser bundle (--sockjs-js); Sockway's iframe page
                                loads it from here too (`sockway serve --sockjs-url .../sockjs.js`)
  POST /result                  one JSON result per (target, transport): appended as a line to --results
  POST /done                    {"target": ...}: the page finished a target; appended as {"done": target}
  POST /log                     a line of the page's log: appended to --page-log

Exits when --expect results have arrived, or when --deadline seconds have passed (the bash script also
stops it by PID).

  harness.py --port P --sockjs-js FILE --results FILE --page-log FILE [--expect N] [--deadline S]
"""
import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sockjs-js", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--page-log", required=True)
    parser.add_argument("--expect", type=int, default=0, help="exit after this many results (0: never)")
    parser.add_argument("--deadline", type=float, default=300.0, help="exit after this many seconds")
    args = parser.parse_args()

    files = {
        "/burst.html": (os.path.join(HERE, "burst.html"), "text/html; charset=utf-8"),
        "/burst.js": (os.path.join(HERE, "burst.js"), "application/javascript; charset=utf-8"),
        "/sockjs.js": (args.sockjs_js, "application/javascript; charset=utf-8"),
    }
    lock = threading.Lock()
    state = {"results": 0}
    all_in = threading.Event()

    def append(path, line):
        with lock, open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *rest):  # quiet: the bash script prints the results
            pass

        def reply(self, status, body=b"", content_type="text/plain; charset=utf-8"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/favicon.ico":
                return self.reply(204)
            if path not in files:
                return self.reply(404, b"not found\n")
            name, content_type = files[path]
            with open(name, "rb") as f:
                self.reply(200, f.read(), content_type)

        do_HEAD = do_GET

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            path = self.path.split("?", 1)[0]
            if path == "/log":
                append(args.page_log, body)
            elif path == "/result":
                try:
                    result = json.loads(body)
                except ValueError:
                    return self.reply(400, b"bad json\n")
                append(args.results, json.dumps(result, ensure_ascii=True))
                with lock:
                    state["results"] += 1
                    if args.expect and state["results"] >= args.expect:
                        all_in.set()
            elif path == "/done":
                try:
                    target = json.loads(body).get("target")
                except ValueError:
                    target = None
                append(args.results, json.dumps({"done": target}))
            else:
                return self.reply(404, b"not found\n")
            self.reply(204)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"harness listening on http://127.0.0.1:{args.port}/", flush=True)
    all_in.wait(args.deadline)
    time.sleep(0.5)  # let the last reply go out
    server.shutdown()
    print("harness: all results in" if all_in.is_set() else "harness: deadline passed", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
