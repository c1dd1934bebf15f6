"""What test modules share (a test module never imports another one; tests/
test_suite_conventions.py checks it):

- `wait`: `wait_for` (async) and `wait_for_sync`, the one way to wait for a condition
  no event announces; `settle`, to show that nothing moves.
- `plugins`: building plugins and configurations, and the plugins that exist only for
  tests (SequenceInput, ScriptInput, CollectOutput, RelayFilter).
- `filters`: driving a filter by hand (a context that records what it injects).
- `logstreamer`: a LogstreamerInput pipeline on a directory, and what it delivered.
- `collectors`: `hekapy` as a command: the command line, a `hekapy run` started and
  stopped, its status server and /metrics.
- `lma`: the shipped LMA configurations as the tests patch and run them.
- `paths`: the repository, conf/ and the tests' data, wherever a test module lives.

Real services (RabbitMQ, InfluxDB, HAProxy, collectd) are in tests/services.py, the
fault-injection daemon and accounting in tests/fault_harness.py; pytest fixtures stay in
tests/conftest.py.
"""
