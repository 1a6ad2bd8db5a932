"""A strict little logfmt parser for reading lokit's log lines back in tests."""

from __future__ import annotations

_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def parse(line: str) -> dict[str, str]:
    """`k=v k2="quoted \\"v\\""` -> dict, keeping the order of the keys."""
    out: dict[str, str] = {}
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        eq = line.index("=", i)
        key = line[i:eq]
        assert key and " " not in key, f"bad key in {line!r}"
        i = eq + 1
        if i < n and line[i] == '"':
            i += 1
            buf: list[str] = []
            while line[i] != '"':
                if line[i] == "\\":
                    buf.append(_UNESCAPE[line[i + 1]])
                    i += 2
                else:
                    buf.append(line[i])
                    i += 1
            i += 1
            value = "".join(buf)
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            value = line[i:end]
            assert '"' not in value and "=" not in value, f"unquoted value in {line!r}"
            i = end
        assert key not in out, f"duplicate key {key} in {line!r}"
        out[key] = value
    return out


def lines(text: str) -> list[dict[str, str]]:
    return [parse(x) for x in text.splitlines() if x]
