"""The sans-I/O core: SSE framing, wire decoding and the Assembler's item logic.

Nothing here awaits, touches the network or reads the clock; it imports only the
standard library, msgspec and the ground floor (``_events``, ``_exceptions``).
"""
