"""The robot <-> learner link over pyzmq: durable chunked transitions one way, policy bundles the other."""
