"""The ``upi-rewards`` command line and what it runs: demo, feed, wallet, replay."""
