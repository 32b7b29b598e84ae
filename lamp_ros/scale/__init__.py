"""Scale past one machine: simulated robots as learner peers, and Ray to run them and fan out episodes."""
