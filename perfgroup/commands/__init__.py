"""One module per command; perfgroup.cli loads only the one being run."""
