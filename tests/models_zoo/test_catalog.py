"""The names the web API accepts match models_zoo's registries (the web process never imports them)."""

from labelling import catalog


def test_strategy_names_match_the_registry():
    from models_zoo import selection

    assert sorted(catalog.STRATEGIES) == selection.names()
    assert set(selection.names()) >= catalog.NEEDS_MODEL


def test_ssl_method_names_match_the_registry():
    from models_zoo import ssl

    assert sorted(catalog.SSL_METHODS) == sorted(ssl.names())
