from collections.abc import Iterator

import pytest

from tests.integration.harness import CLIENT

pytest_plugins = ["tests.kafka_broker"]


@pytest.fixture(scope="session", autouse=True)
def _private_config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep checkpoint key files out of the real home, for the whole session.

    Session-scoped so it is in place before module fixtures open a checkpoint store, and
    in ``os.environ`` so that ``stream-al`` child processes find the same key file. A
    test that is about key files points ``XDG_CONFIG_HOME`` or ``HOME`` elsewhere itself.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
        yield


@pytest.fixture(params=["kafka-python", "librdkafka"])
def kafka_client(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test once on each Kafka client of the service (``harness.service_settings``).

    A module whose tests exercise the service's Kafka loop takes it for all of them:
    ``pytestmark = pytest.mark.usefixtures("kafka_client")``.
    """
    token = CLIENT.set(request.param)
    try:
        yield request.param
    finally:
        CLIENT.reset(token)
