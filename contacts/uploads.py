"""Uploads larger than IMPORT_MAX_BYTES are refused before they reach the disk.

Django spools an upload to a temporary file in full before a view can look at its size. This
handler comes first in FILE_UPLOAD_HANDLERS: it stops reading a body whose declared length is
over the limit before reading any of it, and one that grows past it (chunked, or lying about its
length) as soon as it does. The view then answers 413 (`upload_refused`).
"""
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

# A multipart body carries boundaries and headers beside the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class SizeLimitedUploadHandler(FileUploadHandler):
    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > settings.IMPORT_MAX_BYTES + MULTIPART_OVERHEAD:
            self.request.upload_too_large = True
            return QueryDict(), MultiValueDict()  # parsed as empty: not a byte of the body read

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.IMPORT_MAX_BYTES:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handlers keep the file


def upload_refused(request) -> str | None:
    """Why the request's upload was refused for its size, or None."""
    if getattr(request, "upload_too_large", False):
        return (f"The file is larger than {settings.IMPORT_MAX_BYTES:,} bytes (IMPORT_MAX_BYTES); nothing was "
                "stored. Split it into smaller files.")
    return None
