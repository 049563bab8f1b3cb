"""Labeling clients: the queue of the oracle topic, a web app and a terminal labeler."""
