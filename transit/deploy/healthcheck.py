"""`python -m transit.deploy.healthcheck URL`: exit 0 when URL answers 200, else 1.

The container image's HEALTHCHECK (the slim image has no curl); point it at
`/v1/sys/health?perfstandbyok=true&standbyok=true` so that the active node and every unsealed
standby count as healthy and a sealed or uninitialised node does not."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8200/v1/sys/health?perfstandbyok=true&standbyok=true"


def check(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - our own URL
            status = r.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return check(args[0] if args else DEFAULT_URL)


if __name__ == "__main__":
    raise SystemExit(main())
