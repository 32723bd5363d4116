"""multipart/form-data parsed as a stream: file parts go straight to staging files on disk.

Nothing of a file part is held in memory beyond one network chunk, the size limit is enforced
while the bytes arrive (413 before the disk fills), and the sha256 is computed on the way where
the caller keeps it (not for predict: 3 ms of a 3 MB request, on the event loop). The
staging files are removed when the request is done, whatever happened; ingestion publishes what
it keeps under new names first.
"""
from __future__ import annotations

import hashlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from deepclust.app.core.storage import ArtifactStore
from deepclust.app.errors import MALFORMED_REQUEST, TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, ApiError

_MAX_FIELD_BYTES = 64 << 10
# Multipart framing and the small text fields ride on top of the file bytes.
_OVERHEAD_BYTES = 1 << 20


@dataclass
class UploadedFile:
    filename: str
    path: Path
    size: int = 0
    sha256: str = ""


@dataclass
class UploadForm:
    files: dict[str, UploadedFile] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


def too_large(limit: int) -> ApiError:
    return TOO_LARGE(f"The upload is larger than the limit of {limit} bytes "
                     "(DEEPCLUST_MAX_UPLOAD_BYTES).", {"limit": limit})


def malformed(message: str) -> ApiError:
    return MALFORMED_REQUEST(message)


def is_multipart(request: Request) -> bool:
    return parse_options_header(request.headers.get("content-type", ""))[0] == b"multipart/form-data"


class _FormReceiver:
    """Callbacks for python-multipart's streaming parser."""

    def __init__(self, stack: ExitStack, store: ArtifactStore, max_bytes: int,
                 file_fields: tuple[str, ...], text_fields: tuple[str, ...], digest: bool):
        self.stack, self.store, self.max_bytes, self.digest = stack, store, max_bytes, digest
        self.file_fields, self.text_fields = file_fields, text_fields
        self.form = UploadForm()
        self.total = 0
        self.ended = False
        self._header_name = self._header_value = b""
        self._disposition = b""
        self._reset_part()

    def _reset_part(self) -> None:
        self._name = ""
        self._file: BinaryIO | None = None
        self._upload: UploadedFile | None = None
        self._hash = None
        self._text = bytearray()

    def callbacks(self) -> dict:
        return {"on_part_begin": self._reset_part, "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value, "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished, "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end, "on_end": self._on_end}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._disposition = b""
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        if name in self.form.files or name in self.form.fields:
            raise malformed(f"The form field {name!r} appears twice.")
        if b"filename" in options:
            if name not in self.file_fields:
                raise malformed(f"Unexpected file field {name!r}; file fields are: {', '.join(self.file_fields)}.")
            path = self.stack.enter_context(self.store.staging_file(".upload"))
            filename = Path(options[b"filename"].decode("utf-8", "replace")).name
            self._upload = UploadedFile(filename, path)
            self._file = self.stack.enter_context(open(path, "wb"))
            self._hash = hashlib.sha256() if self.digest else None
        elif name not in self.text_fields and name not in self.file_fields:
            allowed = ", ".join(self.file_fields + self.text_fields)
            raise malformed(f"Unexpected form field {name!r}; the fields are: {allowed}.")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is None:
            if len(self._text) + len(chunk) > _MAX_FIELD_BYTES:
                raise malformed(f"The form field {self._name!r} is longer than {_MAX_FIELD_BYTES} bytes.")
            self._text.extend(chunk)
            return
        self.total += len(chunk)
        if self.total > self.max_bytes:
            raise too_large(self.max_bytes)
        self._file.write(chunk)
        if self._hash is not None:
            self._hash.update(chunk)

    def _on_part_end(self) -> None:
        if self._upload is not None:
            self._file.close()
            self._upload.size = self._upload.path.stat().st_size
            if self._hash is not None:  # else the dataclass's "" stands
                self._upload.sha256 = self._hash.hexdigest()
            self.form.files[self._name] = self._upload
        elif self._name in self.file_fields:
            raise malformed(f"The form field {self._name!r} must be a file (send it with a filename).")
        else:
            self.form.fields[self._name] = self._text.decode("utf-8", "replace").strip()

    def _on_end(self) -> None:
        self.ended = True


async def receive_form(request: Request, stack: ExitStack, store: ArtifactStore, max_bytes: int, *,
                       file_fields: tuple[str, ...], text_fields: tuple[str, ...] = (),
                       digest: bool = True) -> UploadForm:
    """Parse the request body; staging files live until ``stack`` closes. ``digest=False``
    leaves each file's ``sha256`` empty."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise UNSUPPORTED_MEDIA_TYPE("Send the upload as multipart/form-data with a 'file' part.",
                                     {"content_type": ctype.decode("latin1")})
    if b"boundary" not in params:
        raise malformed("The multipart Content-Type has no boundary.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + _OVERHEAD_BYTES:
        raise too_large(max_bytes)
    receiver = _FormReceiver(stack, store, max_bytes, file_fields, text_fields, digest)
    try:
        parser = MultipartParser(params[b"boundary"], receiver.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise malformed(f"The multipart body cannot be parsed: {exc}") from None
    if not receiver.ended:
        raise malformed("The multipart body ended early (no closing boundary): the upload is incomplete.")
    return receiver.form
