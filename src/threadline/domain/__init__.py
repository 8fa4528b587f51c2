"""Plain types shared by every layer: enums, ids, errors and state machines. No I/O here."""
