"""Form bodies (URL-encoded and multipart) as providers post them."""

from __future__ import annotations

from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from threadline.channels.base import FormData, FormFile
from threadline.domain.errors import MalformedPayload


def parse_form(content_type: str, body: bytes) -> FormData:
    """Fields (and, for multipart, files) of a form body; ``MalformedPayload`` otherwise."""
    kind, options = parse_options_header(content_type)
    if kind == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise MalformedPayload("a multipart body without a boundary")
        return _multipart(boundary, body, (options.get(b"charset") or b"utf-8").decode())
    if kind in (b"application/x-www-form-urlencoded", b""):
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedPayload("the body is not a URL-encoded form") from exc
        return FormData(fields=pairs, files=[])
    raise MalformedPayload("expected a form body", content_type=content_type.split(";")[0].strip())


def _multipart(boundary: bytes, body: bytes, charset: str) -> FormData:
    fields: list[tuple[str, str]] = []
    files: list[FormFile] = []
    headers: dict[bytes, bytes] = {}
    header_field = bytearray()
    header_value = bytearray()
    data = bytearray()

    def on_part_begin() -> None:
        headers.clear()
        data.clear()

    def on_header_field(buf: bytes, start: int, end: int) -> None:
        header_field.extend(buf[start:end])

    def on_header_value(buf: bytes, start: int, end: int) -> None:
        header_value.extend(buf[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(buf: bytes, start: int, end: int) -> None:
        data.extend(buf[start:end])

    def on_part_end() -> None:
        _, options = parse_options_header(headers.get(b"content-disposition"))
        name = options.get(b"name")
        if name is None:
            raise MalformedPayload("a multipart part without a name")
        field_name = name.decode(charset, "replace")
        filename = options.get(b"filename")
        part_type = headers.get(b"content-type")
        kind = parse_options_header(part_type)[0] if part_type else b""
        if filename is None and kind in (b"", b"text/plain"):
            part_charset = parse_options_header(part_type)[1].get(b"charset")
            fields.append((field_name, _decode(bytes(data), part_charset, charset)))
            return
        files.append(
            FormFile(
                field_name=field_name,
                filename=filename.decode(charset, "replace") if filename is not None else None,
                content_type=kind.decode() or None,
                content=bytes(data),
            )
        )

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise MalformedPayload("the body is not a valid multipart form") from exc
    return FormData(fields=fields, files=files)


def _decode(raw: bytes, part_charset: bytes | None, default: str) -> str:
    for charset in (part_charset.decode() if part_charset else None, default, "latin-1"):
        if not charset:
            continue
        try:
            return raw.decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("utf-8", "replace")  # pragma: no cover - latin-1 decodes anything
