"""Encrypting and decrypting a batch body as it is pushed, a piece at a time.

pyrage (the binding of the Rust implementation of age) holds the GIL while it works, so in
the caller's process the cipher adds its whole time to encoding or decoding the records. A
body of `CHILD_MIN_BYTES` or more therefore goes through the `age` command (the reference Go
implementation, Debian's package age) on the other core, which also costs a third of
pyrage's CPU for the same bytes (bench crypto). This process writes the input to its stdin
and reads the output from its stdout in the same loop, with no helper thread, so neither
blocks the other. A smaller body is gathered and done in one pyrage call at the end, where a
process start would cost more than it saves. Either way memory stays at a few pieces (and at
most `CHILD_MIN_BYTES` gathered). Both implementations read and write the same format.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import select
import shutil
import subprocess
from collections.abc import Callable, Iterator
from functools import partial
from typing import IO, Final

import pyrage
from pyrage import x25519

from batchformat.crypt import RecipientKeys, classify_decrypt_error
from batchformat.digest import StreamingSha256
from batchformat.errors import BatchRejected

# Below this, one pyrage call in process at the end: from 2-4 MiB on the `age` process is
# faster, start included (bench crypto's threshold table).
CHILD_MIN_BYTES: Final = 4 << 20
PIPE_BYTES: Final = 1 << 20  # each pipe's buffer (Linux default limit), and each read
_SETPIPE_SZ: Final = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_ERROR: Final = "age: error: "  # how the age command starts the line that says what failed
# `age: error:` lines about the child's own surroundings (its key pipe, its output), not
# about the stream it was given.
_NOT_THE_STREAM: Final = ("reading ", "failed to open", "failed to write")


class AgeProcessError(RuntimeError):
    """The `age` process failed, or is missing: nothing said about the batch, to try again."""


def age_command() -> str:
    """The `age` command's path; AgeProcessError saying what to install when it is missing."""
    if (path := shutil.which("age")) is None:
        raise AgeProcessError(
            f"the age command is missing: batches of {CHILD_MIN_BYTES >> 20} MiB or more are "
            "encrypted and decrypted by it (install the Debian package age: apt-get install age)"
        )
    return path


def age_environment() -> dict[str, str]:
    """The environment the `age` command runs in: this process's, on one core.

    One stream is sequential work: Go's scheduler on every core only adds hand-offs (on
    1 GiB the child's CPU fell from 0.95 s to 0.77 s decrypting).
    """
    return {**os.environ, "GOMAXPROCS": "1"}


class _AgeChild:
    """One age stream in an `age` process: `push` input, `end` it; output goes to `sink`."""

    def __init__(
        self,
        arguments: list[str],
        sink: Callable[[bytes | memoryview], None],
        identities: bytes = b"",
    ) -> None:
        pass_fds: tuple[int, ...] = ()
        if identities:
            # Identities reach the child through a pipe of their own (`-i /dev/fd/N`), never
            # its argv or environment; a few lines fit in the pipe's buffer.
            secret_read, secret_write = os.pipe()
            os.write(secret_write, identities)
            os.close(secret_write)
            pass_fds = (secret_read,)
            arguments = [*arguments, "--identity", f"/dev/fd/{secret_read}"]
        try:
            process = subprocess.Popen(
                [age_command(), *arguments],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                pass_fds=pass_fds,
                env=age_environment(),
            )
        finally:
            for fd in pass_fds:
                os.close(fd)
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        self._process = process
        self._stdin: IO[bytes] | None = process.stdin
        self._stdout, self._stderr = process.stdout, process.stderr
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):  # a smaller pipe only means more rounds
                fcntl.fcntl(pipe, _SETPIPE_SZ, PIPE_BYTES)
            os.set_blocking(pipe.fileno(), False)
        # poll, not select: a busy service may hold file descriptors above select's 1024.
        self._poll = select.poll()
        self._poll.register(process.stdout, select.POLLIN)
        self._poll.register(process.stdin, select.POLLOUT)
        self._sink = sink
        self._piece = bytearray(PIPE_BYTES)  # output is handed on in pieces of this size
        self._filled = 0
        self._output_ended = False

    def push(self, data: bytes | memoryview) -> None:
        """Write all of `data` to the child, handing on its output meanwhile."""
        view = memoryview(data)
        while view and self._stdin is not None:
            for fd, _ in self._poll.poll():
                if fd == self._stdout.fileno():
                    self._read()
                elif self._stdin is not None:
                    try:
                        view = view[os.write(fd, view[:PIPE_BYTES]) :]
                    except BrokenPipeError:  # the child failed: `end` reports why
                        self._close_input()

    def end(self) -> str | None:
        """Close the input, hand on the rest of the output; None, or age's refusal.

        A refusal is what age said about the stream (its first error line). An `age` that
        failed for a reason of its own (killed, out of memory, a key file it could not read)
        raises AgeProcessError: that says nothing about the batch, which must not be
        rejected for it.
        """
        self._close_input()
        while not self._output_ended:
            self._poll.poll()
            self._read()
        report = self._stderr.read().decode("utf-8", "replace")
        status = self._wait()
        if status == 0:
            return None
        errors = [line[len(_ERROR) :] for line in report.splitlines() if line.startswith(_ERROR)]
        message = errors[0][:200] if errors else ""
        if status == 1 and message and not message.startswith(_NOT_THE_STREAM):
            return message
        ended = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        said = f": {message}" if message else ""
        raise AgeProcessError(f"the age process {ended}{said}")

    def kill(self) -> None:
        """Stop the child of an abandoned stream."""
        self._process.kill()
        self._close_input()
        if not self._output_ended:
            self._output_ended = True
            self._poll.unregister(self._stdout)
        self._wait()

    def _read(self) -> None:
        # The child writes a 64 KiB age chunk at a time; handing on MiB pieces lets the
        # writer hash them on its hashing thread and write them in few calls.
        try:
            count = os.readv(self._stdout.fileno(), [memoryview(self._piece)[self._filled :]])
        except BlockingIOError:
            return
        self._filled += count
        if count == 0:
            self._output_ended = True
            self._poll.unregister(self._stdout)
            if self._filled:
                self._sink(memoryview(self._piece)[: self._filled])
        elif self._filled == len(self._piece):
            self._sink(memoryview(self._piece))  # never written again: the next is new
            self._piece, self._filled = bytearray(PIPE_BYTES), 0

    def _close_input(self) -> None:
        if self._stdin is not None:
            stdin, self._stdin = self._stdin, None
            self._poll.unregister(stdin)
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def _wait(self) -> int:
        self._stdout.close()
        self._stderr.close()
        return self._process.wait()


class _Stream:
    """Input gathered until there are `CHILD_MIN_BYTES` of it, then pushed to an `age` child."""

    def __init__(self, start_child: Callable[[], _AgeChild]) -> None:
        self._start_child = start_child
        self._gathered: list[bytes | memoryview] = []
        self._gathered_bytes = 0
        self.child: _AgeChild | None = None

    def feed(self, data: bytes | memoryview) -> None:
        if self.child is not None:
            self.child.push(data)
            return
        self._gathered.append(data)
        self._gathered_bytes += len(data)
        if self._gathered_bytes >= CHILD_MIN_BYTES:
            self.child = self._start_child()
            for piece in self._gathered:
                self.child.push(piece)
            self._gathered = []

    def take_gathered(self) -> bytes:
        """All the input, when it stayed too small for a child."""
        data, self._gathered = b"".join(self._gathered), []
        return data

    def abandon(self) -> None:
        self._gathered = []
        if self.child is not None:
            self.child.kill()


class BodyEncryptor:
    """Encrypt pushed plaintext to recipients; the ciphertext goes to `sink` in order."""

    def __init__(
        self, recipients: RecipientKeys, sink: Callable[[bytes | memoryview], None]
    ) -> None:
        if not recipients:
            raise ValueError("encrypting needs at least one recipient key")
        self._recipients = list(recipients.values())
        self._sink = sink
        # Recipients are public keys: on the command line they tell nothing.
        arguments = ["--encrypt"] + [f"--recipient={key}" for key in self._recipients]
        self._stream = _Stream(partial(_AgeChild, arguments, sink))
        self._plaintext = StreamingSha256()

    def feed(self, plaintext: bytes | memoryview) -> None:
        """Encrypt the next plaintext bytes (they must not change afterwards)."""
        self._plaintext.update(plaintext)
        self._stream.feed(plaintext)

    def finish(self) -> str:
        """Write the last chunk; the SHA-256 of the plaintext (hex); raise if encryption failed."""
        if self._stream.child is None:
            self._sink(pyrage.encrypt(self._stream.take_gathered(), self._recipients))
        elif (refusal := self._stream.child.end()) is not None:
            raise AgeProcessError(f"age encryption failed: {refusal}")
        return self._plaintext.digest().hex()

    def abandon(self) -> None:
        """Stop without finishing (the batch is being thrown away)."""
        self._stream.abandon()
        self._plaintext.close()


class BodyDecryptor:
    """Decrypt pushed ciphertext with the receiver's identities; plaintext comes out in order."""

    def __init__(self, identities: list[x25519.Identity]) -> None:
        self._identities = identities
        self._plaintext: list[bytes | memoryview] = []
        secret = "".join(f"{identity}\n" for identity in identities).encode("ascii")
        self._stream = _Stream(partial(_AgeChild, ["--decrypt"], self._plaintext.append, secret))

    def feed(self, ciphertext: bytes | memoryview) -> None:
        """The next ciphertext bytes (they must not change afterwards)."""
        self._stream.feed(ciphertext)

    def ready(self) -> Iterator[bytes | memoryview]:
        """Plaintext decrypted so far and not yet taken."""
        pieces = self._plaintext.copy()
        self._plaintext.clear()  # the same list: the child's output appends to it
        return iter(pieces)

    def finish(self) -> BatchRejected | None:
        """End the stream; the rejection its failure means, if it failed."""
        if self._stream.child is None:
            source = io.BytesIO(self._stream.take_gathered())
            try:
                pyrage.decrypt_io(source, _Appender(self._plaintext.append), self._identities)
            except (pyrage.DecryptError, OSError) as exc:  # what age reports, classified
                return classify_decrypt_error(str(exc), ended_early=isinstance(exc, OSError))
            return None
        refusal = self._stream.child.end()
        return None if refusal is None else classify_decrypt_error(refusal)

    def close(self) -> None:
        """Stop the child of an abandoned stream."""
        self._stream.abandon()


class _Appender(io.BufferedIOBase):
    """The file-like object pyrage writes decrypted chunks to, in process."""

    def __init__(self, append: Callable[[bytes | memoryview], None]) -> None:
        super().__init__()
        self._append = append

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._append(bytes(data))  # pyrage reuses its buffer
        return len(data)
