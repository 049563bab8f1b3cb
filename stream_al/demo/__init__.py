"""Stand-ins for the world around the service: a feeder of samples and a simulated oracle."""
