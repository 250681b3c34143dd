"""A status snapshot in the Prometheus text exposition format (version 0.0.4) for /metrics."""

from __future__ import annotations

from protocol.messages import StatusReply

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# counters key -> (metric name, help); messages and bytes by direction are handled apart.
_COUNTERS = {
    "jobs": ("rake_jobs_forwarded_total", "JOB messages forwarded to workers."),
    "results": ("rake_results_total", "RESULT messages forwarded to submitters."),
    "results_dropped": ("rake_results_dropped_total", "RESULTs dropped: their submitter was gone."),
    "rejected": ("rake_messages_rejected_total", "Messages refused as malformed or unforwardable."),
    "wants": ("rake_wants_total", "WANT messages forwarded."),
    "chunks": ("rake_chunks_total", "CHUNK messages forwarded."),
    "transfers_dropped": ("rake_transfers_dropped_total", "WANT/CHUNK for an unknown peer, or CHUNK not asked for, dropped."),
    "unroutable": ("rake_peers_unreachable_total", "Sends that found the peer disconnected."),
    "dropped_full": ("rake_messages_dropped_full_total", "Messages dropped: the peer's queue was full."),
    "flight_dropped": ("rake_flight_dropped_total", "Jobs forgotten by the full in-flight table."),
    "peer_errors": ("rake_peer_errors_total", "ERROR messages received from peers."),
    "forbidden": ("rake_messages_forbidden_total", "Messages refused: not allowed for the sender's role."),
    "unauthorized": ("rake_messages_unauthorized_total", "Messages ignored: the sender's key is not allowed."),
    "rate_limited": ("rake_messages_rate_limited_total", "Messages dropped over a peer's rate limit."),
    "bugs": ("rake_internal_errors_total", "Messages whose handling failed in the broker (our fault)."),
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(lines: list[str], name: str, kind: str, help_text: str, samples) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        tags = ",".join(f'{k}="{_label(v)}"' for k, v in labels)
        lines.append(f"{name}{{{tags}}} {value}" if tags else f"{name} {value}")


def render_metrics(reply: StatusReply) -> str:
    counters = dict(reply.counters)
    lines: list[str] = []
    _family(lines, "rake_uptime_seconds", "gauge", "Seconds since the broker started.", [((), reply.uptime)])
    _family(lines, "rake_workers", "gauge", "Workers registered.", [((), reply.workers_total)])
    _family(lines, "rake_submitters", "gauge", "Submitters registered.", [((), reply.submitters_total)])
    _family(lines, "rake_actions_in_flight", "gauge", "Jobs forwarded to a worker with no RESULT yet.",
            [((), reply.flight_total)])
    per_worker = [(w, (("worker", w.name), ("id", w.id))) for w in reply.workers]
    for field, help_text in (("slots", "Jobs the worker runs at once."),
                             ("queue", "Jobs the worker holds: waiting, queued and running."),
                             ("running", "Jobs the worker is running."),
                             ("heard", "Seconds since the worker's last message.")):
        name = "rake_worker_last_heard_seconds" if field == "heard" else f"rake_worker_{field}"
        _family(lines, name, "gauge", help_text, [(labels, getattr(w, field)) for w, labels in per_worker])
    _family(lines, "rake_messages_total", "counter", "Messages received (in) and sent (out), by type.",
            [((("direction", key[:key.index(".")]), ("type", key[key.index(".") + 1:])), n)
             for key, n in sorted(counters.items()) if key.startswith(("in.", "out."))])
    _family(lines, "rake_bytes_total", "counter", "Bytes of all frames received (in) and sent (out).",
            [((("direction", d),), counters.get(f"bytes_{d}", 0)) for d in ("in", "out")])
    for key, (name, help_text) in _COUNTERS.items():
        _family(lines, name, "counter", help_text, [((), counters.get(key, 0))])
    return "\n".join(lines) + "\n"
