"""A small synchronous client of the console's JSON API (``dr-edge session``, the demo, tests).

Refusals come back as :class:`ConsoleError` with the station's ``code`` and French
``message``; the JSON of every successful call is returned as is.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ConsoleError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ConsoleClient:
    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        if not base_url.startswith(("http://127.", "http://localhost", "http://[::1]")):
            raise ValueError(f"the console is local only, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                raw = resp.read()
                if resp.headers.get_content_type() != "application/json":
                    return raw
                return json.loads(raw)
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                err = json.loads(payload)["error"]
            except (ValueError, KeyError, TypeError):
                raise ConsoleError(
                    exc.code, "http_error", payload[:200].decode(errors="replace")
                ) from exc
            raise ConsoleError(exc.code, err["code"], err["message"]) from exc

    # -- the agent's actions ----------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/health")
        return result

    def sign_in(self, agent_id: str, password: str) -> str:
        result = self.request("POST", "/api/signin", {"agent_id": agent_id, "password": password})
        self.token = str(result["token"])
        return self.token

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/status")
        return result

    def start(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/sessions", {})
        return result

    def session(self, sid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/sessions/{sid}")
        return result

    def recall(self, sid: str, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/sessions/{sid}/prerequest", body)
        return result

    def documents(
        self, sid: str, *, checked: list[str], stamp: str | None = None, erase_images: bool = False
    ) -> dict[str, Any]:
        body = {"checked": checked, "stamp": stamp, "erase_images": erase_images}
        result: dict[str, Any] = self.request("POST", f"/api/sessions/{sid}/documents", body)
        return result

    def capture(self, sid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/sessions/{sid}/capture", {})
        return result

    def exception(self, sid: str, code: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/sessions/{sid}/exception", {"code": code}
        )
        return result

    def confirm(self, sid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/sessions/{sid}/confirm", {})
        return result

    def abort(self, sid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/sessions/{sid}/abort", {})
        return result

    def handover(self, request_number: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", "/api/handover", {"request_number": request_number}
        )
        return result
