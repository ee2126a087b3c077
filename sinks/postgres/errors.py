"""Which Postgres errors are an outage and which refuse the data (``sinks.deadletters`` says what each means).

By SQLSTATE class (https://www.postgresql.org/docs/current/errcodes-appendix.html):

- **outage** (pause and retry): no SQLSTATE at all (connection refused, reset, closed: psycopg raises
  ``OperationalError`` / ``InterfaceError``), 08 connection exception, 40 transaction rollback
  (serialization failure, deadlock), 53 insufficient resources (disk full, out of memory, too many
  connections), 57 operator intervention (admin shutdown, cannot connect now, statement timeout),
  58 system error (I/O), 25006 read-only transaction (a standby after a failover), 55P03 lock not
  available.
- **data** (the rows can never be written): 22 data exception (a value out of range, invalid text
  representation, a character the encoding cannot hold), 23 integrity constraint violation (a NOT NULL
  column left null, a check), 54 program limit exceeded (a value too long for an index row), and values
  psycopg cannot send (text with lone surrogates, a number out of its type's range).
- anything else (a syntax error, a missing table or column, a privilege) is a bug or a misconfiguration:
  it is neither, and stops the processor.
"""

from __future__ import annotations

import psycopg

__all__ = ["is_data_error", "is_outage"]

_OUTAGE_CLASSES = ("08", "40", "53", "57", "58")
_OUTAGE_STATES = ("25006", "55P03")
_DATA_CLASSES = ("22", "23", "54")


def is_outage(exc: BaseException) -> bool:
    """Postgres is unreachable or cannot take writes now; the same write may succeed later."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return state[:2] in _OUTAGE_CLASSES or state in _OUTAGE_STATES


def is_data_error(exc: BaseException) -> bool:
    """Postgres (or the encoding to it) refuses a value of the rows: retrying can never help."""
    if isinstance(exc, (UnicodeError, psycopg.DataError)):  # the latter also when raised client-side
        return True
    if not isinstance(exc, psycopg.Error) or exc.sqlstate is None:
        return False
    return exc.sqlstate[:2] in _DATA_CLASSES
