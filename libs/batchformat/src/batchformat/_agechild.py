"""One age stream in a process of its own, for big bodies (run by batchformat.agestream).

pyrage holds the GIL while it encrypts or decrypts, so in the writer's or reader's own
process the cipher cannot overlap with encoding or decoding the records; here it runs on
the other core. This file imports only pyrage and the standard library (it is run by path,
not as part of the package), so the process starts in about 20 ms.

stdin: the key lines (`age1…` recipients to encrypt, identities to decrypt), an empty line,
then the input stream. stdout: the output stream. At the end stderr's last line is:
`ok<TAB>SHA256` on success (encrypting: the SHA-256 of the plaintext, hashed here too so
that the writer has less to do; decrypting: empty), else `os<TAB>message` or
`age<TAB>message` and the exit status is 1. Keys never reach argv, the environment or
stderr.
"""

import hashlib
import io
import sys

import pyrage
from pyrage import x25519

PIPE_BYTES = 1 << 20  # what each pipe holds (agestream sets it)


class HashedInput(io.BufferedIOBase):
    """The plaintext as pyrage reads it, hashed on the way."""

    def __init__(self, source: io.BufferedIOBase) -> None:
        super().__init__()
        self._source = source
        self.hash = hashlib.sha256()

    def read(self, size: int | None = -1) -> bytes:
        data = self._source.read(size)
        self.hash.update(data)
        return data


def main() -> int:
    # A MiB buffer on stdin: pyrage reads 64 KiB at a time, and the pipe holds a MiB
    # (measured on 1 GiB: the child's system time went from 0.5 s to 0.2 s). Its writes
    # pass through as they come, which keeps the parent's reads flowing.
    source = io.BufferedReader(io.FileIO(0, "rb", closefd=False), PIPE_BYTES)
    sink = io.BufferedWriter(io.FileIO(1, "wb", closefd=False))
    keys = []
    while line := source.readline().strip():
        keys.append(line.decode("ascii"))
    try:
        digest = ""
        if sys.argv[1] == "encrypt":
            plaintext = HashedInput(source)
            pyrage.encrypt_io(plaintext, sink, [x25519.Recipient.from_str(key) for key in keys])
            digest = plaintext.hash.hexdigest()
        else:
            pyrage.decrypt_io(source, sink, [x25519.Identity.from_str(key) for key in keys])
        sink.flush()
    except (pyrage.DecryptError, pyrage.EncryptError, OSError) as exc:  # age refused it
        # Reported to the parent, which classifies it; anything else is a failure of this
        # process (a traceback), which the parent does not blame on the batch.
        kind = "os" if isinstance(exc, OSError) else "age"
        sys.stderr.write(f"{kind}\t{str(exc)[:200]}\n")
        return 1
    sys.stderr.write(f"ok\t{digest}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
