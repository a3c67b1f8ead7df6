"""Developer tools: the template generator and the pytest plugin that grades the TODOs."""
