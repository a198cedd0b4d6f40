"""The fleet's signed apt repository on a board: its source entry and its public key.

apt verifies every download against the key named by ``Signed-By`` alone (not
the system's trusted keys).  The key is the operator's public key
(docs/updates.md, "The signing key"); provisioning refuses anything else.
"""

from __future__ import annotations

from .files import Wanted

KEYRING = "/etc/apt/keyrings/kioskd.asc"
SOURCES = "/etc/apt/sources.list.d/kioskd.sources"

_PUBLIC = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


class AptError(ValueError):
    """A repository URL or key provisioning refuses; the message says why."""


def check_key(key: bytes) -> None:
    """Accept an ASCII-armored OpenPGP public key block, nothing else.

    Raises:
        AptError: a private key (it must stay offline), or not an armored public key.

    """
    if b"PRIVATE KEY" in key:
        raise AptError("the repository key file holds a private key: give the public key only")
    if not key.lstrip().startswith(_PUBLIC):
        raise AptError(
            "the repository key is not an ASCII-armored OpenPGP public key"
            " (export it with gpg --armor --export)"
        )


def files(url: str, key: bytes) -> list[Wanted]:
    """The key and the deb822 source entry of the repository at ``url``.

    Raises:
        AptError: the URL is not http(s)/file, or the key is refused (:func:`check_key`).

    """
    if not url.startswith(("https://", "http://", "file:/")):
        raise AptError(f"--apt-url must be an https://, http:// or file: URL (found {url!r})")
    check_key(key)
    sources = (
        "# kioskd: the fleet's signed package repository, written by `kioskd provision`.\n"
        "Types: deb\n"
        f"URIs: {url}\n"
        # A flat repository (debian/repository/publish): every version in one index.
        "Suites: ./\n"
        f"Signed-By: {KEYRING}\n"
    )
    return [Wanted(KEYRING, key, 0o644), Wanted(SOURCES, sources.encode(), 0o644)]
