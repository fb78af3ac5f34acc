"""A fake model API on loopback for the agent tests (never a real upstream).

Answers the request shapes of the agent CLIs just enough for one turn:
OpenAI Responses (SSE, used by codex), OpenAI Chat Completions (aider),
Anthropic Messages (claude, opencode) and Gemini generateContent (gemini).
When SHELL_TOOL is set, the first model turn asks the agent to run that shell
command (a tool call), the next turn answers with DONE_TEXT. Every request
line is appended to LOG (method, host header, path), one per line.
Usage: fake_api.py PORT_FILE LOG [SHELL_TOOL]  (port: $FAKE_API_PORT or any;
written to PORT_FILE once listening)
"""
import http.server, json, os, socketserver, sys, threading

PORT_FILE, LOG = sys.argv[1], sys.argv[2]
SHELL_TOOL = sys.argv[3] if len(sys.argv) > 3 else ""
DONE_TEXT = "fake-api-done"
lock = threading.Lock()
turns = {"n": 0}


def log(line):
    with lock:
        with open(LOG, "a") as f:
            f.write(line + "\n")


def sse(events):
    out = []
    for ev in events:
        if isinstance(ev, tuple):
            out.append("event: %s\ndata: %s\n\n" % (ev[0], json.dumps(ev[1])))
        else:
            out.append("data: %s\n\n" % json.dumps(ev))
    return "".join(out).encode()


def responses_body(req):
    """OpenAI Responses API stream: a shell call first (if asked), then text."""
    inputs = req.get("input") or []
    saw_output = any(isinstance(i, dict) and i.get("type", "").endswith("_call_output") for i in inputs)
    tool_names = [t.get("name") for t in req.get("tools") or [] if isinstance(t, dict)]
    rid = "resp_%d" % turns["n"]
    for i in inputs:
        if isinstance(i, dict) and i.get("type", "").endswith("_call_output"):
            out = i.get("output")
            if not isinstance(out, str):
                out = json.dumps(out)
            log("TOOL_OUTPUT " + out.replace("\n", " ")[:600])
    if SHELL_TOOL and not saw_output:
        name = "exec_command" if "exec_command" in tool_names else "shell"
        args = {"cmd": SHELL_TOOL} if name == "exec_command" else {"command": ["sh", "-c", SHELL_TOOL]}
        item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name,
                "arguments": json.dumps(args), "status": "completed"}
    else:
        item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": DONE_TEXT, "annotations": []}]}
    resp = {"id": rid, "object": "response", "status": "completed", "output": [item],
            "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}
    return sse([("response.created", {"type": "response.created", "response": {"id": rid}}),
                ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
                ("response.completed", {"type": "response.completed", "response": resp})])


def chat_body(req):
    if req.get("stream"):
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": req.get("model", "m"),
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": DONE_TEXT}, "finish_reason": None}]}
        end = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": req.get("model", "m"),
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        return "text/event-stream", sse([chunk, end]) + b"data: [DONE]\n\n"
    return "application/json", json.dumps({
        "id": "c1", "object": "chat.completion", "created": 0, "model": req.get("model", "m"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": DONE_TEXT}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


def anthropic_body(req):
    msg = {"id": "msg_1", "type": "message", "role": "assistant", "model": req.get("model", "m"),
           "content": [{"type": "text", "text": DONE_TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 1, "output_tokens": 1}}
    if not req.get("stream"):
        return "application/json", json.dumps(msg).encode()
    start = dict(msg, content=[], stop_reason=None)
    return "text/event-stream", sse([
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": DONE_TEXT}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"})])


def gemini_body(path):
    resp = {"candidates": [{"content": {"role": "model", "parts": [{"text": DONE_TEXT}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}
    if "streamGenerateContent" in path:
        return "text/event-stream", sse([resp])
    if ":countTokens" in path:
        return "application/json", json.dumps({"totalTokens": 1}).encode()
    return "application/json", json.dumps(resp).encode()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        log("%s %s %s" % (self.command, self.headers.get("Host", "-"), self.path))
        try:
            req = json.loads(raw) if raw else {}
        except ValueError:
            req = {}
        p = self.path.split("?")[0]
        with lock:
            turns["n"] += 1
        if p.endswith("/responses"):
            return self.reply(200, "text/event-stream", responses_body(req))
        if p.endswith("/chat/completions"):
            return self.reply(200, *chat_body(req))
        if p.endswith("/messages") or p.endswith("/messages/count_tokens"):
            if p.endswith("count_tokens"):
                return self.reply(200, "application/json", b'{"input_tokens": 1}')
            return self.reply(200, *anthropic_body(req))
        if ":generateContent" in p or ":streamGenerateContent" in p or ":countTokens" in p:
            return self.reply(200, *gemini_body(p))
        if p.endswith("/models"):
            return self.reply(200, "application/json", b'{"object": "list", "data": [], "models": []}')
        return self.reply(200, "application/json", b"{}")

    do_GET = do_POST = do_HEAD = do_PUT = handle_any


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = S(("127.0.0.1", int(os.environ.get("FAKE_API_PORT", "0"))), H)
tmp = PORT_FILE + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, PORT_FILE)
srv.serve_forever()
