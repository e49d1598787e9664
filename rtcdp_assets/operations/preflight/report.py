"""Check results, their rendering (text or JSON) and the scrubbing of secrets from both."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["OK", "WARN", "FAIL", "SKIP"]

# Environment variables whose values are secrets: never printed, even inside an error message
# (a driver or SDK may echo a connection string). Paths to key files are not secrets.
_SECRET_NAME = re.compile(r"(KEY|KEY_ID|SECRET|PASSWORD|PASSPHRASE|TOKEN|CONNECTION_STRING|_URL)$")
_NOT_SECRET_NAME = re.compile(r"(_PATH|_FILE|_ACCOUNT_URL|ENDPOINT_URL|_IMS_URL|_PLATFORM_URL)$")
# The password of a URL (postgresql://user:password@host/db), whatever variable it came from.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?P<at>@)", re.I)
MASK = "***"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: what was checked, how it went, and what to do about it."""

    status: Status
    check: str  # e.g. "sftp.host_key", "zone.aep_landing"
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.check:<24} {self.detail}"
        return f"{text}  FIX: {self.fix}" if self.fix else text


def ok(check: str, detail: str) -> CheckResult:
    return CheckResult("OK", check, detail)


def warn(check: str, detail: str, fix: str = "") -> CheckResult:
    return CheckResult("WARN", check, detail, fix)


def fail(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult("FAIL", check, detail, fix)


def skip(check: str, because: str) -> CheckResult:
    return CheckResult("SKIP", check, f"not checked: {because}")


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment that must never be printed (longest first)."""
    env = os.environ if environ is None else environ
    values = {
        value
        for name, value in env.items()
        if _SECRET_NAME.search(name) and not _NOT_SECRET_NAME.search(name) and len(value) >= 4
    }
    return sorted(values, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        text = text.replace(value, MASK)
    return _URL_PASSWORD.sub(rf"\g<head>{MASK}\g<at>", text)


def scrubbed(result: CheckResult, secrets: list[str]) -> CheckResult:
    # A fix is written by the preflight from names and paths; only a detail can carry a
    # driver's message with a URL in it, so only details lose URL passwords.
    fix = result.fix
    for value in secrets:
        fix = fix.replace(value, MASK)
    return CheckResult(result.status, result.check, scrub(result.detail, secrets), fix)


def summary(results: list[CheckResult]) -> str:
    counts = {status: sum(r.status == status for r in results) for status in Status.__args__}  # type: ignore[attr-defined]
    verdict = "preflight FAILED" if counts["FAIL"] else "preflight passed"
    return (
        f"{verdict}: {counts['FAIL']} failed, {counts['WARN']} warnings, "
        f"{counts['OK']} ok, {counts['SKIP']} not checked"
    )


def render_text(results: list[CheckResult]) -> str:
    return "\n".join([*(r.line() for r in results), summary(results)]) + "\n"


def render_json(results: list[CheckResult]) -> str:
    return json.dumps(
        {
            "passed": not any(r.status == "FAIL" for r in results),
            "summary": summary(results),
            "checks": [asdict(r) for r in results],
        },
        indent=2,
    )


def exit_code(results: list[CheckResult]) -> int:
    return 1 if any(r.status == "FAIL" for r in results) else 0


def _first_line(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    first = message[0][:300] if message else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """An exception as one short line, with the error that caused it when it was wrapped
    (Dagster's "too many retries for DB connection" hides the driver's reason)."""
    root = exc
    for _ in range(10):  # a chain is short; the bound only guards against a cycle
        cause = root.__cause__ or root.__context__
        if cause is None:
            break
        root = cause
    text, reason = _first_line(exc), _first_line(root)
    if root is exc or reason.split(": ", 1)[-1] in text:
        return text
    return f"{text} <- {reason}"
