"""Hand-made Claude Code log lines, for tests that need each case spelled out."""
import json


def line(msg="msg_1", req="req_1", *, out=5, inp=10, read=0, w5=0, w1=0,
         model="claude-haiku-4-5-20251001", ts="2026-02-01T10:00:00.000Z", session="s1",
         sidechain=False, speed=None, **extra) -> str:
    usage = {"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": read,
             "cache_creation_input_tokens": w5 + w1,
             "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}}
    if speed:
        usage["speed"] = speed
    record = {"parentUuid": None, "isSidechain": sidechain, "type": "assistant", "sessionId": session,
              "timestamp": ts, "requestId": req, "uuid": f"u-{msg}-{req}-{out}",
              "message": {"id": msg, "type": "message", "role": "assistant", "model": model,
                          "usage": usage}, **extra}
    if req is None:
        del record["requestId"]
    return json.dumps(record, separators=(",", ":"))


def write(path, *lines, end="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + end)


def append(path, *lines):
    with open(path, "a") as f:
        f.write("".join(x + "\n" for x in lines))


def nanos(usd_per_mtok_times_tokens: float) -> int:
    """$/Mtok x tokens, in nano-dollars (exact for the test's round prices)."""
    return round(usd_per_mtok_times_tokens * 1000)
