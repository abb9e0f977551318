"""Every framework and broker workaround, one module each.

Which behaviour each one answers, the test that shows it and when it can be
deleted: the table in docs/design.md ("Workarounds"). Nothing here imports the
stages or the wiring; the wiring installs the patches (``topologies.app``) and
passes in what they need (client security options, settings).
"""
