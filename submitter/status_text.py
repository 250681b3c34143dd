"""rake-status's text view of a STATUS-REPLY: a summary line, the workers, the actions in flight."""

from __future__ import annotations

from protocol.messages import StatusReply
from protocol.paths import printable as clean   # peer-supplied text: escape sequences made visible


def age(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def table(headers: list[str], rows: list[list], right: set[int]) -> list[str]:
    """Columns padded to their widest cell; columns in `right` are right-aligned."""
    cells = [headers] + [[clean(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    pad = lambda i, c: c.rjust(widths[i]) if i in right else c.ljust(widths[i])  # noqa: E731
    return ["  ".join(pad(i, c) for i, c in enumerate(r)).rstrip() for r in cells]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def render(reply: StatusReply, endpoint: str) -> str:
    workers = reply.workers
    running = sum(w.running for w in workers)
    queued = sum(max(0, w.queue - w.running) for w in workers)   # a worker's report, not trusted
    listed = f" (the {len(workers)} listed:" if reply.workers_total > len(workers) else ""
    lines = [f"broker {clean(endpoint)} (rake {clean(reply.version)}), up {age(reply.uptime)}: "
             f"{plural(reply.workers_total, 'worker')},{listed} {sum(w.slots for w in workers)} slots, "
             f"{running} running, {queued} queued{')' if listed else ''}; {plural(reply.submitters_total, 'submitter')}; "
             f"{plural(reply.flight_total, 'action')} in flight", ""]
    if workers:
        lines += table(["WORKER", "HOST", "STATE", "SLOTS", "RUNNING", "QUEUED", "HEARD", "VERSION"],
                       [[w.name, w.host, w.state, w.slots, w.running, max(0, w.queue - w.running),
                         age(w.heard), w.version] for w in workers], right={3, 4, 5, 6})
        if reply.workers_total > len(workers):
            lines.append(f"... and {reply.workers_total - len(workers)} more workers")
    else:
        lines.append("no worker connected")
    lines.append("")
    if reply.flight:
        lines += table(["JOB", "STATE", "WORKER", "SUBMITTER", "FOR", "COMMAND"],
                       [[a.job, a.state, a.worker_name or a.worker[:8], a.submitter or a.client[:8],
                         age(a.age), a.command] for a in reply.flight], right={0, 4})
        if reply.flight_total > len(reply.flight):
            lines.append(f"... and {reply.flight_total - len(reply.flight)} more in flight")
    else:
        lines.append("no action in flight")
    return "\n".join(lines) + "\n"
