"""The pure active-learning core: models, uncertainty measures, query strategies, learner.

Nothing in this package knows about Kafka; the service, the simulator and the tests
drive it the same way, one sample at a time.
"""
