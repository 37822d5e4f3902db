"""What the bench scripts read from a `drctl run` log: each state's spans."""
import re


def spans(stderr):
    """{state: [seconds, ...]} from lines "HH:MM:SS.mmm +   12.345s  ▶ State (Type)"
    and "... ✔ State"."""
    started, out = {}, {}
    for line in stderr.splitlines():
        m = re.search(r"\+\s+([\d.]+)s\s+([▶✔])\s+(\w+)", line)
        if not m:
            continue
        at, mark, state = float(m.group(1)), m.group(2), m.group(3)
        if mark == "▶":
            started.setdefault(state, []).append(at)
        elif started.get(state):
            out.setdefault(state, []).append(at - started[state].pop(0))
    return out


def fig(found, state):
    """The slowest span of a state, printed; "n/a" when it never ran."""
    s = found.get(state, [])
    return f"{max(s):.2f} s" if s else "n/a"
