"""Typed contracts shared with the bank (input) and wallet (outputs) teams.

Every message that crosses a topic boundary is one frozen pydantic model here,
one module per contract; ``python -m schemas.export`` writes their JSON Schema.
"""
