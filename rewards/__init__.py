"""The pure rewards core: rules, caps, refunds, validation. No Faust, no Kafka.

The same functions serve the worker's agents, the replay tools and the unit
tests, so what the tests prove is what production runs.
"""
