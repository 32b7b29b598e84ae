"""The learner: trains the agent on transitions robots send over the link and pushes new policy bundles."""
