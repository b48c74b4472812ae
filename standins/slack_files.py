"""The Slack stand-in's file uploads, the current way (files.upload is retired):
files.getUploadURLExternal hands out an upload URL, the file's bytes are POSTed there, and
files.completeUploadExternal shares it in a channel, or with users by their ids (a DM).

Answers are shaped like the real ones in tests/fixtures/slack/web_api__files.*. Mixed into
SlackStandIn; the state is kept under its condition's lock.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

_ID = re.compile(r"^[CGDUW][A-Z0-9]{2,}$")


@dataclass
class StoredFile:
    """A file as the stand-in holds it."""

    id: str
    filename: str
    length: int
    content: bytes | None = None  # None until its bytes were uploaded
    title: str | None = None
    shared_to: list[str] = field(default_factory=list)
    initial_comment: str | None = None
    completed: bool = False
    created: int = 0


class FilesMixin:
    """files.getUploadURLExternal, the upload URL, files.completeUploadExternal."""

    # Provided by SlackStandIn.
    _cond: Any
    team_id: str
    bot_user_id: str

    def _init_files(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._upload_tokens: dict[str, str] = {}  # upload URL token -> file id
        self._file_seq = 0

    @property
    def files(self) -> dict[str, StoredFile]:
        """Snapshot of file id -> file (bytes, title, where it was shared)."""
        with self._cond:
            return copy.deepcopy(self._files)

    def _files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        """files.getUploadURLExternal: a file id and a one-time URL for its bytes."""
        filename = str(args.get("filename") or "")
        try:
            length = int(args.get("length"))
        except (TypeError, ValueError):
            length = -1
        if not filename:
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": ["[ERROR] missing required field: filename"]},
            }
        if length < 1:
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": ["[ERROR] missing required field: length"]},
            }
        self._file_seq += 1
        file_id = f"F0STANDIN{self._file_seq:04d}"
        token = secrets.token_urlsafe(24)
        self._files[file_id] = StoredFile(file_id, filename, length, created=int(time.time()))
        self._upload_tokens[token] = file_id
        return {"ok": True, "upload_url": f"{self.url}/upload/v1/{token}", "file_id": file_id}  # type: ignore[attr-defined]

    def _files_upload(self, token: str, raw: bytes) -> tuple[int, str]:
        """The upload URL: takes the bytes once; Slack answers 'OK - <size>'."""
        with self._cond:
            file_id = self._upload_tokens.pop(token, None)
            if file_id is None:
                return 404, "Not Found"
            stored = self._files[file_id]
            stored.content = raw
            return 200, f"OK - {len(raw)}"

    def _files_complete(self, args: dict[str, Any]) -> dict[str, Any]:
        """files.completeUploadExternal: finish uploads, share them where asked."""
        raw = args.get("files")
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            items = None
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and i.get("id") for i in items):
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": ["[ERROR] invalid `files`"]},
            }
        targets = [str(args["channel_id"])] if args.get("channel_id") else []
        channels = args.get("channels")
        if isinstance(channels, str):
            targets += [c.strip() for c in channels.split(",") if c.strip()]
        elif isinstance(channels, list):
            targets += [str(c) for c in channels]
        if any(not _ID.match(t) for t in targets):
            return {"ok": False, "error": "invalid_channel"}
        found = []
        for item in items:
            stored = self._files.get(str(item["id"]))
            if stored is None or stored.content is None:
                return {"ok": False, "error": "file_not_found"}
            found.append((stored, item))
        out = []
        for stored, item in found:
            stored.title = item.get("title") or stored.filename
            stored.completed = True
            stored.shared_to += targets
            stored.initial_comment = args.get("initial_comment")
            out.append(self._file_object(stored))
        for target in targets:
            # Shared files appear as a message in the channel (or the DM), with the comment as its text.
            self._messages.setdefault(target, []).append(  # type: ignore[attr-defined]
                {
                    "type": "message",
                    "subtype": "file_share",
                    "user": self.bot_user_id,
                    "ts": self._next_ts(),  # type: ignore[attr-defined]
                    "text": args.get("initial_comment") or "",
                    "files": [{"id": s.id, "name": s.filename, "title": s.title} for s, _ in found],
                }
            )
        return {"ok": True, "files": out}

    def _file_object(self, stored: StoredFile) -> dict[str, Any]:
        """A file as files.completeUploadExternal describes it (shares are filled in later by Slack)."""
        content = stored.content or b""
        name = stored.filename
        plain = name.endswith((".csv", ".txt", ".jsonl"))
        return {
            "id": stored.id,
            "created": stored.created,
            "timestamp": stored.created,
            "name": name,
            "title": stored.title,
            "mimetype": "text/csv" if name.endswith(".csv") else "text/plain" if plain else "application/octet-stream",
            "filetype": "csv" if name.endswith(".csv") else "text" if plain else "binary",
            "pretty_type": "CSV" if name.endswith(".csv") else "Plain Text" if plain else "Binary",
            "user": self.bot_user_id,
            "user_team": self.team_id,
            "editable": plain,
            "size": len(content),
            "mode": "snippet" if plain else "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"https://files.slack.com/files-pri/{self.team_id}-{stored.id}/{name}",
            "url_private_download": f"https://files.slack.com/files-pri/{self.team_id}-{stored.id}/download/{name}",
            "permalink": f"https://standin.slack.com/files/{self.bot_user_id}/{stored.id}/{name}",
            "permalink_public": f"https://slack-files.com/{self.team_id}-{stored.id}-{secrets.token_hex(5)}",
            "edit_link": f"https://standin.slack.com/files/{self.bot_user_id}/{stored.id}/{name}/edit",
            "preview": content[:200].decode("utf-8", "replace") if plain else None,
            "preview_highlight": "",
            "lines": content.count(b"\n"),
            "lines_more": 0,
            "preview_is_truncated": len(content) > 200,
            "comments_count": 0,
            "is_starred": False,
            "shares": {},
            "channels": [],
            "groups": [],
            "ims": [],
            "has_more_shares": False,
            "has_rich_preview": False,
            "file_access": "visible",
        }
