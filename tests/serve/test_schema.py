"""Property-based requests from the OpenAPI schema (schemathesis, in-process): never a 5xx.

The schema's strategies drive plain Hypothesis ``@given`` (schemathesis' own pytest
plugin does not run under pytest 9), positive and negative (schema-violating) cases.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from cnnkit.serve.app import ServeOptions, create_app


@pytest.fixture(scope="module")
def api_schema(run_dir):
    app = create_app(run_dir, ServeOptions(max_upload_mb=0.5))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_schema_lists_the_api(api_schema):
    paths = {op.ok().path for op in api_schema.get_all_operations()}
    assert paths == {"/health", "/predict", "/explain"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(api_schema, mode):
    seen = []

    @given(case=api_schema.as_strategy(mode))
    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call_and_validate(checks=[not_a_server_error])
        seen.append(response.status_code)
        assert response.status_code < 500
        if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
            assert "error" in response.json()

    check()
    assert len(seen) >= 6
