"""Study storage locations: which a spec may name, and how they are shown (never a password).

Torch- and optuna-free, so ``check`` validates a spec's ``storage`` at its line.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit

# Databases Optuna's RDBStorage reaches through SQLAlchemy: servers that many machines share.
DATABASE_SCHEMES = ("postgresql", "postgresql+psycopg", "mysql", "mysql+pymysql")
JOURNAL_SUFFIX = ".journal"


def redact(text: str, url: str | None = None) -> str:
    """``text`` with the password of ``url`` (``text`` itself when no url is given) replaced by
    ``***``.

    Example:
        >>> redact("postgresql://ann:s3cret@db/specc")
        'postgresql://ann:***@db/specc'
    """
    url = text if url is None else url
    try:
        password = urlsplit(url).password if "://" in url else None
    except ValueError:
        return text
    if not password:
        return text
    return text.replace(f":{password}@", ":***@").replace(password, "***")


def storage_problem(value: str) -> str | None:
    """Why a spec's ``storage`` is refused, or None: a relative ``.journal`` path that does not
    climb out (``..``), or a database URL (``postgresql://user@host/db``)."""
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme in DATABASE_SCHEMES:
            return None
        if scheme.startswith("sqlite"):
            return ("SQLite locks up under concurrent workers; use a .journal file on one "
                    "machine or postgresql://user@host/db for many")
        return f"unsupported storage scheme {scheme!r}; use postgresql://user@host/db"
    path = PurePosixPath(value.replace("{experiment}", "x"))
    if path.is_absolute() or ".." in path.parts or not value:
        return "a journal path must be relative and stay below the working folder (no '..')"
    if path.suffix != JOURNAL_SUFFIX:
        return f"a journal file ends in {JOURNAL_SUFFIX}"
    return None
