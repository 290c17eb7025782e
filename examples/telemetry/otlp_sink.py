# A local OTLP/HTTP receiver for the cost benchmark: accepts every export
# (200, an empty ExportTraceServiceResponse) and counts requests and bytes.
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    n = 0; size = 0
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        H.n += 1; H.size += len(body)
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0"); self.end_headers()
        if H.n % 10 == 0: print(f"exports={H.n} bytes={H.size}", file=sys.stderr, flush=True)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
