"""User-facing errors.

A `LenrlError` carries a one-line message that says what is wrong and where (file, line, config key).
The command-line entry points catch it and print `lenrl: error: <message>` without a traceback.
"""


class LenrlError(Exception):
    """Bad input from the user: config, data file, model path, cluster address."""
