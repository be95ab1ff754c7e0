"""Seeded contents of run fields (output, interaction, input, errors, storage).

Every draw comes from the one seeded ``random.Random`` the run generator uses, in a fixed order,
so a seed always yields the same runs (benchmarks and the demo rely on that).
"""

from __future__ import annotations

import random
from typing import Any

ERROR_CODES = {
    # code: (type, message, field names that may be blamed)
    "timeout": ("task", "Task run exceeded the maximum runtime of 30 minutes.", ()),
    "source_error": (
        "source",
        "The source returned an unexpected error.",
        ("account_number", "period"),
    ),
    "source_not_available": ("source", "The source is temporarily unavailable.", ()),
    "interaction_timeout": ("interaction", "The interaction was not answered in time.", ("code",)),
    "api_error": ("api", "An internal error occurred.", ()),
    "invalid_credentials": (
        "auth",
        "The credentials were rejected by the source.",
        ("username", "password"),
    ),
}
FAILURE_CODES = (
    ("timeout", 0.22),
    ("source_error", 0.30),
    ("source_not_available", 0.20),
    ("api_error", 0.10),
    ("invalid_credentials", 0.13),
    ("interaction_timeout", 0.05),
)


class Dice:
    """Fast, deterministic stand-ins for randint/randrange/choice (those dominate generation)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def ri(self, lo: int, hi: int) -> int:
        return lo + int(self.rng.random() * (hi - lo + 1))

    def rr(self, n: int) -> int:
        return int(self.rng.random() * n)

    def pick(self, seq: tuple[Any, ...]) -> Any:
        return seq[int(self.rng.random() * len(seq))]

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(96):024x}"


class Payloads(Dice):
    """Field values of finished, failed and waiting runs, with the type drift real data has."""

    def failure_code(self) -> str:
        u = self.rng.random()
        acc = 0.0
        for code, weight in FAILURE_CODES:
            acc += weight
            if u < acc:
                return code
        return FAILURE_CODES[-1][0]

    def error(self, code: str) -> dict[str, Any]:
        etype, message, fields = ERROR_CODES[code]
        field = fields[self.rr(len(fields))] if fields and self.rng.random() < 0.5 else None
        return {"type": etype, "code": code, "message": message, "field": field}

    def failure(self, runtime: int | str, code: str) -> dict[str, Any]:
        errors = [self.error(code)]
        if self.rng.random() < 0.2:
            errors.append(self.error(self.failure_code()))
        return {
            "status": "failed",
            "result": "failure",
            "runtime_ms": runtime,
            "output": None,
            "errors": errors,
            "interaction": None,
        }

    def completion(self, runtime: int | str, newer: bool) -> dict[str, Any]:
        rng = self.rng
        done: dict[str, Any] = {
            "status": "completed",
            "result": "success" if rng.random() < 0.92 else "unknown",
            "runtime_ms": runtime,
            "output": self.output(),
            "errors": None,
            "interaction": None,
        }
        if newer:
            done["storage"] = [
                {
                    "id": f"stor_{rng.getrandbits(96):024x}",
                    "name": self.pick(
                        ("invoice.pdf", "statement.pdf", "report.csv", "screenshot.png")
                    ),
                    "size": self.ri(200, 5_000_000),
                }
                for _ in range(self.pick((0, 0, 1, 1, 2, 3)))
            ]
        return done

    def task_input(self) -> dict[str, Any]:
        rng = self.rng
        shape = self.rr(4)
        if shape == 0:
            return {}
        if shape == 1:
            return {"month": f"2025-{self.ri(1, 12):02d}"}
        if shape == 2:
            return {
                "account_number": f"****{self.ri(1000, 9999)}",
                "include_pdf": rng.random() < 0.5,
            }
        return {"date_range": {"from": "2025-10-01", "to": "2025-12-31"}, "limit": self.ri(1, 50)}

    def interaction(self) -> Any:
        shape = self.rr(5)
        if shape == 0:
            return {
                "type": "mfa",
                "prompt": "Enter the code",
                "fields": [{"name": "code", "type": "text"}],
            }
        if shape == 1:
            return {
                "type": "security_question",
                "question": "What was the name of your first pet?",
                "fields": [{"name": "answer", "type": "text"}],
            }
        if shape == 2:
            return {
                "type": "select",
                "prompt": "Choose an account",
                "options": [
                    {"id": f"acc_{i}", "label": f"Checking ending {self.ri(1000, 9999)}"}
                    for i in range(self.ri(2, 4))
                ],
            }
        if shape == 3:
            return {
                "type": "mfa",
                "channel": self.pick(("sms", "email")),
                "expires_in": self.ri(60, 600),
            }
        return "Enter the code sent to your phone"

    def output(self) -> Any:
        """Arbitrary JSON whose shape and types drift between runs, as real task outputs do."""
        rng = self.rng
        u = rng.random()
        if u < 0.45:
            out: dict[str, Any] = {}
            a = self.rr(3)
            out["amount"] = (
                self.ri(1, 5000)
                if a == 0
                else (
                    f"{self.ri(1, 5000)}.{self.ri(0, 99):02d}"
                    if a == 1
                    else round(rng.uniform(1, 5000), 2)
                )
            )
            if rng.random() < 0.7:
                out["currency"] = self.pick(("USD", "EUR", "CAD"))
            if rng.random() < 0.5:
                out["invoice_count"] = self.ri(0, 20) if rng.random() < 0.8 else str(self.ri(0, 20))
            if rng.random() < 0.4:
                out["paid"] = rng.random() < 0.5 if rng.random() < 0.8 else self.pick(("yes", "no"))
            if rng.random() < 0.3:
                out["due_date"] = f"2025-{self.ri(1, 12):02d}-{self.ri(1, 28):02d}"
            if rng.random() < 0.2:
                out["documents"] = [f"doc_{self.ri(1, 999)}.pdf" for _ in range(self.ri(0, 3))]
            if rng.random() < 0.15:
                out["notes"] = None
            return out
        if u < 0.60:
            return {
                "account": {
                    "holder": {
                        "name": self.pick(("Ada Lovelace", "Alan Turing", "Grace Hopper")),
                        "id": self.ri(1, 10_000),
                    },
                    "summary": {
                        "balance": self.ri(0, 100_000)
                        if rng.random() < 0.5
                        else f"{self.ri(0, 100_000)}.00",
                        "open": True,
                    },
                },
                "fetched": self.ri(1, 50),
            }
        if u < 0.75:
            return [
                {
                    "invoice_id": f"INV-{self.ri(1000, 9999)}",
                    "amount": self.ri(1, 900) if rng.random() < 0.5 else f"{self.ri(1, 900)}.50",
                }
                for _ in range(self.ri(0, 4))
            ]
        if u < 0.82:
            return [
                self.ri(1, 100) if rng.random() < 0.7 else str(self.ri(1, 100))
                for _ in range(self.ri(1, 5))
            ]
        if u < 0.89:
            return self.pick(("Downloaded 3 invoices", "No new documents", "done"))
        if u < 0.94:
            return self.ri(0, 1000) if rng.random() < 0.5 else round(rng.uniform(0, 100), 3)
        if u < 0.97:
            return True
        return None
